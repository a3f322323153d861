//! The adapter's health as `/status` shows it: the gateway connection's state and
//! when anything last arrived on it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The connection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    NotStarted,
    Connecting,
    Connected,
    /// Lost or refused; trying again. The text is token-free.
    Reconnecting(String),
    /// Given up: Discord refused the bot (a bad token, intents not enabled).
    Failed(String),
    Stopped,
}

#[derive(Debug)]
struct Health {
    state: State,
    last_received: Option<Instant>,
}

/// Shared between the channel handle and its background tasks.
#[derive(Clone)]
pub(crate) struct HealthCell(Arc<Mutex<Health>>);

impl HealthCell {
    pub fn new() -> HealthCell {
        HealthCell(Arc::new(Mutex::new(Health { state: State::NotStarted, last_received: None })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, state: State) {
        self.lock().state = state;
    }

    /// Something arrived from the gateway (an event or a heartbeat's acknowledgement).
    pub fn touch(&self) {
        self.lock().last_received = Some(Instant::now());
    }

    /// One line: `gateway connected, last heard from 3 s ago`.
    pub fn line(&self) -> String {
        let health = self.lock();
        let heard = match health.last_received {
            Some(at) => format!(", last heard from {} s ago", at.elapsed().as_secs()),
            None => String::new(),
        };
        match &health.state {
            State::NotStarted => "not started".into(),
            State::Connecting => format!("gateway connecting{heard}"),
            State::Connected => format!("gateway connected{heard}"),
            State::Reconnecting(why) => format!("gateway reconnecting after: {why}{heard}"),
            State::Failed(why) => format!("error: {why} (not retrying)"),
            State::Stopped => "stopped".into(),
        }
    }
}
