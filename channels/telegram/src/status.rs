//! The adapter's health as `/status` shows it.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

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

/// Shared between the channel handle and its background task.
#[derive(Clone)]
pub(crate) struct HealthCell(Arc<Mutex<Health>>);

impl HealthCell {
    pub fn new() -> HealthCell {
        HealthCell(Arc::new(Mutex::new(Health::NotStarted)))
    }

    pub fn get(&self) -> Health {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets the health and returns the previous one.
    pub fn set(&self, health: Health) -> Health {
        std::mem::replace(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner), health)
    }
}
