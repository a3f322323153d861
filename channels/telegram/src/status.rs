//! The adapter's health as `/status` shows it, and its ingress progress (the
//! last answered long poll) for readiness and the watchdog.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use switchboard_channel_core::Ingress;

use crate::errors::Conflict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    NotStarted,
    Polling,
    Webhook,
    Conflict(Conflict),
    /// Polling failed for another reason; the text is token-free.
    Retrying(String),
    Stopped,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::NotStarted => f.write_str("not started"),
            Health::Polling => f.write_str("polling"),
            Health::Webhook => f.write_str("webhook"),
            Health::Conflict(Conflict::OtherPoller) => {
                f.write_str("conflict: another process is polling this bot token (backing off)")
            }
            Health::Conflict(Conflict::Webhook) => {
                f.write_str("conflict: a webhook is set for this bot token by another process (backing off)")
            }
            Health::Retrying(reason) => write!(f, "error: {reason} (retrying)"),
            Health::Stopped => f.write_str("stopped"),
        }
    }
}

struct Inner {
    health: Health,
    /// When a getUpdates call last answered.
    last_poll: Option<Instant>,
}

/// Shared between the channel handle and its background task.
#[derive(Clone)]
pub(crate) struct HealthCell {
    inner: Arc<Mutex<Inner>>,
    /// How old the last answered poll may get before the channel counts as deaf.
    within: Duration,
}

impl HealthCell {
    /// A healthy long poll answers at least every `poll_timeout`: twice that
    /// (at least 2 s) without an answer is deaf.
    pub fn new(poll_timeout: Duration) -> HealthCell {
        let within = (poll_timeout * 2).max(Duration::from_secs(2));
        HealthCell { inner: Arc::new(Mutex::new(Inner { health: Health::NotStarted, last_poll: None })), within }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self) -> Health {
        self.lock().health.clone()
    }

    /// Sets the health and returns the previous one.
    pub fn set(&self, health: Health) -> Health {
        std::mem::replace(&mut self.lock().health, health)
    }

    /// A getUpdates call answered: ingress made progress.
    pub fn polled(&self) {
        self.lock().last_poll = Some(Instant::now());
    }

    /// Whether the channel receives.
    pub fn ingress(&self) -> Ingress {
        let inner = self.lock();
        match inner.health {
            Health::NotStarted | Health::Stopped => Ingress::Down,
            Health::Webhook => Ingress::Listening,
            Health::Polling | Health::Conflict(_) | Health::Retrying(_) => {
                Ingress::Progressing { last: inner.last_poll, within: self.within }
            }
        }
    }
}
