//! A fake's state behind one lock, with a wake-up for the connections that
//! push what changed (a gateway, a socket).

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The state of one fake server.
#[derive(Default)]
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    /// Woken whenever the state changes through [`Shared::change`].
    pub wake: Notify,
}

impl<S> Shared<S> {
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes the connections.
    pub fn change<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        let out = f(&mut self.lock());
        self.wake.notify_waiters();
        out
    }
}
