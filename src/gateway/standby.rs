//! Where each exclusive ingress (a long poller, a gateway connection) receives,
//! as this replica saw it last: here, or on another replica. What readiness,
//! `switchboard status` and `/status` report for such a channel (replicas only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use switchboard_channel_core::{Channel, Ingress};

/// Shared by the replica's ingress keepers (which write) and its reports.
#[derive(Clone)]
pub struct Standby {
    states: Arc<Mutex<HashMap<String, State>>>,
    /// How long a sighting of another holder counts.
    ttl: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// This replica holds the lease and the channel receives here.
    Receiving,
    /// Another replica held the lease when last asked (then).
    Elsewhere(Instant),
}

impl Standby {
    /// Sightings count for `ttl` (a lease's length).
    pub fn new(ttl: Duration) -> Standby {
        Standby { states: Arc::default(), ttl }
    }

    fn set(&self, channel: &str, state: Option<State>) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        match state {
            Some(state) => states.insert(channel.to_string(), state),
            None => states.remove(channel),
        };
    }

    /// `channel` receives here now.
    pub fn receiving(&self, channel: &str) {
        self.set(channel, Some(State::Receiving));
    }

    /// Another replica holds `channel`'s lease now.
    pub fn elsewhere(&self, channel: &str) {
        self.set(channel, Some(State::Elsewhere(Instant::now())));
    }

    /// `channel` stopped receiving here.
    pub fn stopped(&self, channel: &str) {
        self.set(channel, None);
    }

    /// How exclusive `channel` receives, when not here: standing by while
    /// another replica held its lease within a lease's length; down otherwise
    /// (nobody was seen receiving: not healthy, whatever this replica's adapter
    /// says). `None` when it receives here (its adapter tells how well).
    pub fn ingress(&self, channel: &str) -> Option<Ingress> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        match states.get(channel) {
            Some(State::Receiving) => None,
            Some(State::Elsewhere(at)) if at.elapsed() < self.ttl => Some(Ingress::Standby),
            _ => Some(Ingress::Down),
        }
    }
}

/// `channel`'s ingress as reported here: its adapter's, or (an exclusive
/// channel of a replica that does not receive it) what `standby` saw.
pub fn ingress(channel: &dyn Channel, standby: Option<&Standby>) -> Ingress {
    elsewhere(channel, standby).unwrap_or_else(|| channel.ingress())
}

fn elsewhere(channel: &dyn Channel, standby: Option<&Standby>) -> Option<Ingress> {
    standby.filter(|_| channel.exclusive_ingress())?.ingress(channel.name())
}

/// `channel`'s health line, as `/status` and `switchboard status` show it.
pub fn status_line(channel: &dyn Channel, standby: Option<&Standby>) -> String {
    match elsewhere(channel, standby) {
        Some(Ingress::Standby) => "standby: another replica receives for it".to_string(),
        Some(_) => "not receiving here, and no other replica was seen receiving".to_string(),
        None => super::observe::status_line(channel),
    }
}
