//! This replica's leases (replicas only): claimed in the store, renewed in the
//! background, let go of on purpose, and judged by this process's own clock: a
//! lease counts as held only until the moment its last claim or renewal was
//! *sent* plus its length, which is never later than when the store lets it
//! lapse, so a replica stops using a lease before anyone else can take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ReplicaSettings;
use crate::keyed::{KeyGuard, KeyedLocks};
use crate::store::{blocking, Claim, Lease, Store, StoreResult};

/// Waits for the next look for work: an announcement or the poll's pace.
pub struct Waker {
    every: Duration,
    heard: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Waker {
    /// Returns at the next announcement, or after `poll_every` at the latest.
    pub async fn wait(&mut self) {
        let Some(heard) = self.heard.as_mut() else { return tokio::time::sleep(self.every).await };
        tokio::select! {
            _ = tokio::time::sleep(self.every) => {}
            changed = heard.changed() => {
                if changed.is_err() {
                    // The listener is gone: the timer alone from now on.
                    self.heard = None;
                }
            }
        }
    }
}

/// The leases this process holds, one handle shared by its parts.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn Store>,
    /// This process's id as a holder (host, pid and a random part).
    holder: Arc<str>,
    settings: ReplicaSettings,
    held: Arc<Mutex<HashMap<String, Held>>>,
    /// Claims, renewals and releases of one name wait for each other, so a
    /// release never lands after a newer claim of the same name; other names
    /// do not wait.
    names: KeyedLocks,
}

struct Held {
    lease: Lease,
    /// When it may lapse in the store, by this process's clock.
    until: Instant,
}

impl Leases {
    pub fn new(store: Arc<dyn Store>, settings: ReplicaSettings) -> Leases {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let random = uuid::Uuid::new_v4().simple().to_string();
        let holder = format!("{}-{}-{}", host.trim(), std::process::id(), &random[..8]);
        Leases { store, holder: holder.into(), settings, held: Arc::default(), names: KeyedLocks::new() }
    }

    /// This replica's holder id (as the store records it).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease length, renewal and poll settings.
    pub fn settings(&self) -> &ReplicaSettings {
        &self.settings
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serialises the store operations on `name`.
    pub async fn lock(&self, name: &str) -> KeyGuard {
        self.names.lock(name).await
    }

    /// Whether this replica holds `name` for at least `margin` more.
    pub fn holds_for(&self, name: &str, margin: Duration) -> bool {
        self.held().get(name).is_some_and(|h| Instant::now() + margin < h.until)
    }

    /// Whether this replica holds `name` now.
    pub fn holds(&self, name: &str) -> bool {
        self.holds_for(name, Duration::ZERO)
    }

    /// The lease as last claimed or renewed, while held: what a fenced write
    /// presents.
    pub fn fence(&self, name: &str) -> Option<Lease> {
        self.held().get(name).filter(|h| Instant::now() < h.until).map(|h| h.lease.clone())
    }

    /// The names held now that start with `prefix`.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        self.held().keys().filter(|n| n.starts_with(prefix)).cloned().collect()
    }

    /// Claims `name` (call under [`Leases::lock`]): true when this replica holds
    /// it now, newly or still.
    pub async fn claim_locked(&self, name: &str) -> StoreResult<bool> {
        let sent = Instant::now();
        let (n, holder, ttl) = (name.to_string(), self.holder.to_string(), self.settings.lease_ttl);
        match blocking(&self.store, move |s| s.lease_claim(&n, &holder, ttl)).await? {
            Claim::Held(lease) => {
                self.held().insert(name.to_string(), Held { lease, until: sent + ttl });
                Ok(true)
            }
            Claim::Taken { .. } => {
                self.held().remove(name);
                Ok(false)
            }
        }
    }

    /// Claims `name`; true when held now.
    pub async fn claim(&self, name: &str) -> StoreResult<bool> {
        let _lock = self.lock(name).await;
        self.claim_locked(name).await
    }

    /// Lets `name` go at once (call under [`Leases::lock`]).
    pub async fn release_locked(&self, name: &str) {
        let Some(held) = self.held().remove(name) else { return };
        let lease = held.lease;
        if let Err(e) = blocking(&self.store, move |s| s.lease_release(&lease)).await {
            // It lapses by itself within its length.
            tracing::warn!(error = %e, lease = %name, "cannot release a lease; it lapses by itself");
        }
    }

    /// Lets `name` go at once.
    pub async fn release(&self, name: &str) {
        let _lock = self.lock(name).await;
        self.release_locked(name).await
    }

    /// Lets every lease go (a clean stop): the other replicas take over at once
    /// instead of after a lease's length.
    pub async fn release_all(&self) {
        let names: Vec<String> = self.held().keys().cloned().collect();
        for name in &names {
            self.release(name).await;
        }
        if !names.is_empty() {
            self.announce().await;
        }
    }

    /// Tells the other replicas to look for work now (not at their next poll).
    pub async fn announce(&self) {
        if let Err(e) = blocking(&self.store, |s| s.announce()).await {
            tracing::debug!(error = %e, "cannot tell the other replicas; they look at their next poll");
        }
    }

    /// What wakes a replica looking for work: `poll_every`, or an announcement
    /// (from any replica) heard before.
    pub fn waker(&self) -> Waker {
        Waker { every: self.settings.poll_every, heard: self.store.announcements() }
    }

    /// Renews every held lease once. One the store no longer grants is dropped;
    /// one the store cannot be asked about keeps its deadline and lapses here
    /// when that passes.
    pub async fn renew_all(&self) {
        let names: Vec<String> = self.held().keys().cloned().collect();
        for name in names {
            let _lock = self.lock(&name).await;
            let Some(lease) = self.held().get(&name).map(|h| h.lease.clone()) else { continue };
            let sent = Instant::now();
            let ttl = self.settings.lease_ttl;
            match blocking(&self.store, move |s| s.lease_renew(&lease, ttl)).await {
                Ok(Some(lease)) => {
                    self.held().insert(name.clone(), Held { lease, until: sent + ttl });
                }
                Ok(None) => {
                    tracing::warn!(lease = %name, "a lease lapsed before it was renewed; another replica may hold it now");
                    self.held().remove(&name);
                }
                Err(e) => tracing::warn!(error = %e, lease = %name, "cannot renew a lease"),
            }
            // A lease past its deadline is not ours any more, whatever the store said.
            let mut held = self.held();
            if held.get(&name).is_some_and(|h| Instant::now() >= h.until) {
                held.remove(&name);
            }
        }
    }

    /// Renews every `renew_every` until aborted.
    pub async fn renew_loop(self) {
        loop {
            tokio::time::sleep(self.settings.renew_every).await;
            self.renew_all().await;
        }
    }
}
