//! How replicas share the work (only when `store.postgres.replicas` is on). Every
//! `poll_every`, a replica looks for work nobody holds: unanswered events and
//! undelivered replies of chats no live replica holds (a killed replica's,
//! after its leases lapse; one another replica received) and takes them; then it
//! lets go of the chats it no longer needs. An announcement from any replica (an
//! event left for a chat's holder, a lease let go of) makes it look at once. A channel with an exclusive ingress
//! (Telegram's long poller, a Discord connection) receives on the one replica
//! holding its lease, and stops there before that lease can pass on.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchboard_channel_core::{Channel, InboundSink};

use super::delivery::Delivery;
use super::ingress::Ingress;
use super::journal::Journal;
use super::leases::Leases;
use super::owners::Owners;
use super::standby::Standby;
use super::waiting::Arrival;

/// Tells the waiter for a first outcome, once.
fn tell(first: &mut Option<tokio::sync::oneshot::Sender<()>>) {
    if let Some(first) = first.take() {
        let _ = first.send(());
    }
}

/// The least time between two looks for work.
const SWEEP_GAP: Duration = Duration::from_millis(50);

/// How long a replica that could not start a channel's ingress waits before it
/// claims that channel again.
const START_RETRY: Duration = Duration::from_secs(10);

/// This replica's share of the work: its sweeps and exclusive ingress keepers.
#[derive(Clone)]
pub struct Replicas {
    pub leases: Leases,
    owners: Owners,
    journal: Journal,
    delivery: Delivery,
    ingress: Ingress,
    /// Where each exclusive channel receives, as seen here.
    standby: Standby,
}

impl Replicas {
    pub fn new(
        leases: Leases,
        owners: Owners,
        journal: Journal,
        delivery: Delivery,
        ingress: Ingress,
        standby: Standby,
    ) -> Replicas {
        Replicas { leases, owners, journal, delivery, ingress, standby }
    }

    /// One look for work nobody holds; returns how many events and replies
    /// were taken.
    pub async fn sweep(&self) -> usize {
        let mut taken = 0;
        // Unanswered events, by chat, in arrival order.
        match self.journal.unanswered().await {
            Ok(records) => {
                let mut by_chat: BTreeMap<String, Vec<_>> = BTreeMap::new();
                // A channel this replica does not serve (a configuration being
                // rolled out) is left to one that does.
                for record in records.into_iter().filter(|r| self.delivery.serves(&r.event.kind.chat().channel)) {
                    by_chat.entry(record.event.kind.chat().id()).or_default().push(record);
                }
                for (chat, records) in by_chat {
                    if records.iter().all(|r| self.journal.handles(&r.event.event_id)) {
                        continue;
                    }
                    // Taken for the moment of handing over; the lane takes it again.
                    let Some(_using) = self.owners.take(&chat).await else { continue };
                    for record in records {
                        if self.journal.adopt(&record) {
                            taken += 1;
                            self.ingress.enqueue(record.event, Arrival::Again);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for unanswered events"),
        }
        // Undelivered replies of chats nobody here sends. A chat keeps its holder
        // while it has any (the holder's retry loop paces them).
        let mut undelivered = HashSet::new();
        match self.delivery.undelivered().await {
            Ok(items) => {
                for item in items.into_iter().filter(|i| self.delivery.serves(&i.chat.channel)) {
                    let chat = item.chat.id();
                    undelivered.insert(chat.clone());
                    // A held chat's replies are the retry loop's.
                    if self.owners.holds(&chat) || self.delivery.has_work(&chat) {
                        continue;
                    }
                    let Some(using) = self.owners.take(&chat).await else { continue };
                    taken += 1;
                    let delivery = self.delivery.clone();
                    tokio::spawn(async move {
                        let _using = using;
                        delivery.deliver(&item).await
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for undelivered replies"),
        }
        let (journal, delivery) = (self.journal.clone(), self.delivery.clone());
        let busy = |chat: &str| journal.has_pending(chat) || delivery.has_work(chat) || undelivered.contains(chat);
        self.owners.release_idle(busy).await;
        taken
    }

    /// Sweeps every `poll_every`, and whenever a replica announces work, until
    /// aborted.
    pub async fn sweep_loop(self) {
        let mut waker = self.leases.waker();
        loop {
            waker.wait().await;
            // Announcements in a burst (each chat let go of makes one) are
            // looked at together.
            tokio::time::sleep(SWEEP_GAP.min(self.leases.settings().poll_every)).await;
            let taken = self.sweep().await;
            if taken > 0 {
                tracing::info!(taken, "took over unanswered events and undelivered replies");
            }
        }
    }

    /// Runs `channel`'s exclusive ingress whenever this replica holds its lease
    /// (`ingress:<name>`), until aborted: a standby claims it every
    /// `poll_every`; the holder stops receiving once a renewal is overdue,
    /// before the lease can lapse and pass to another replica.
    /// `first` is told once the first claim has an outcome (receiving here,
    /// standing by, or neither).
    pub async fn keep_ingress(
        self,
        channel: Arc<dyn Channel>,
        sink: Arc<dyn InboundSink>,
        first: tokio::sync::oneshot::Sender<()>,
    ) {
        let name = channel.name().to_string();
        let lease = format!("ingress:{name}");
        let settings = *self.leases.settings();
        let mut waker = self.leases.waker();
        let mut announced = false;
        let mut first = Some(first);
        loop {
            let claimed = self.leases.claim(&lease).await;
            match claimed {
                Ok(true) => match channel.start(sink.clone()).await {
                    Ok(()) => {
                        self.standby.receiving(&name);
                        tracing::info!(channel = %name, "receiving here (this replica holds the channel's lease)");
                        tell(&mut first);
                        self.receive_while_held(&*channel, &lease).await;
                    }
                    Err(e) => {
                        tracing::error!(channel = %name, error = %e, "cannot start receiving; another replica may try");
                        self.leases.release(&lease).await;
                        tell(&mut first);
                        // Not at once again (a refused token would be asked in a loop).
                        tokio::time::sleep(START_RETRY.max(settings.poll_every)).await;
                    }
                },
                Ok(false) => {
                    self.standby.elsewhere(&name);
                    if !announced {
                        announced = true;
                        tracing::info!(channel = %name, "standing by: another replica receives for this channel");
                    }
                }
                Err(e) => tracing::warn!(channel = %name, error = %e, "cannot claim the channel's lease"),
            }
            tell(&mut first);
            waker.wait().await;
        }
    }

    /// Keeps `channel` receiving while this replica holds `lease` with a renewal
    /// to spare; then stops it, and lets the lease go for another replica.
    async fn receive_while_held(&self, channel: &dyn Channel, lease: &str) {
        let settings = self.leases.settings();
        while self.leases.holds_for(lease, settings.renew_every) {
            tokio::time::sleep(settings.renew_every / 4).await;
        }
        channel.stop().await;
        self.standby.stopped(channel.name());
        tracing::warn!(channel = %channel.name(), "stopped receiving: the channel's lease was not renewed in time");
        self.leases.release(lease).await;
        self.leases.announce().await;
    }
}
