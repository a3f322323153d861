//! A channel's health as `/status` shows it: how its connection stands and when
//! anything last arrived on it (its ingress progress). Shared by an adapter's
//! handle and its tasks.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::ingress::Ingress;

/// How a connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// `start` has not run.
    NotStarted,
    /// Connecting (or identifying) now.
    Connecting,
    /// Connected and receiving.
    Connected,
    /// Serving an endpoint the platform posts to.
    Listening,
    /// Lost or refused; trying again. The text must hold no secret.
    Reconnecting(String),
    /// Given up (the platform refused the credentials or the setup). No secret.
    Failed(String),
    /// Stopped on request.
    Stopped,
}

#[derive(Debug)]
struct Health {
    state: State,
    last_received: Option<Instant>,
    /// How old `last_received` may get before the channel counts as deaf.
    within: Duration,
}

/// One channel's health. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct HealthCell {
    /// What connects: `gateway`, `socket mode`.
    connection: &'static str,
    health: Arc<Mutex<Health>>,
}

impl HealthCell {
    /// Not started; `connection` names what connects, for the status line;
    /// `within` is how long the connection may stay silent before it counts as deaf.
    pub fn new(connection: &'static str, within: Duration) -> HealthCell {
        HealthCell {
            connection,
            health: Arc::new(Mutex::new(Health { state: State::NotStarted, last_received: None, within })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection now stands so.
    pub fn set(&self, state: State) {
        self.lock().state = state;
    }

    /// Something arrived from the platform: ingress made progress.
    pub fn touch(&self) {
        self.lock().last_received = Some(Instant::now());
    }

    /// From now on the connection may stay silent this long (a platform's
    /// heartbeat interval decides it) before it counts as deaf.
    pub fn set_within(&self, within: Duration) {
        self.lock().within = within;
    }

    /// Whether the channel receives, for readiness and the watchdog.
    pub fn ingress(&self) -> Ingress {
        let health = self.lock();
        match health.state {
            State::NotStarted | State::Failed(_) | State::Stopped => Ingress::Down,
            State::Listening => Ingress::Listening,
            State::Connecting | State::Connected | State::Reconnecting(_) => {
                Ingress::Progressing { last: health.last_received, within: health.within }
            }
        }
    }

    /// One line: `gateway connected, last heard from 3 s ago`.
    pub fn line(&self) -> String {
        let health = self.lock();
        let heard = match health.last_received {
            Some(at) => format!(", last heard from {} s ago", at.elapsed().as_secs()),
            None => String::new(),
        };
        let what = self.connection;
        match &health.state {
            State::NotStarted => "not started".into(),
            State::Connecting => format!("{what} connecting{heard}"),
            State::Connected => format!("{what} connected{heard}"),
            State::Listening => format!("listening for requests{heard}"),
            State::Reconnecting(why) => format!("{what} reconnecting after: {why}{heard}"),
            State::Failed(why) => format!("error: {why} (not retrying)"),
            State::Stopped => "stopped".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_the_state_and_when_anything_arrived() {
        let health = HealthCell::new("gateway", Duration::from_secs(60));
        assert_eq!(health.line(), "not started");
        assert_eq!(health.ingress(), Ingress::Down);
        health.set(State::Connected);
        assert_eq!(health.line(), "gateway connected");
        assert!(!health.ingress().live(), "connected but nothing heard yet");
        health.touch();
        assert!(health.ingress().live());
        assert_eq!(health.line(), "gateway connected, last heard from 0 s ago");
        health.set(State::Reconnecting("closed".into()));
        assert!(health.clone().line().starts_with("gateway reconnecting after: closed"));
    }
}
