//! The gateway's front door: an event is journaled (and recognised if the
//! platform redelivers it) and `deliver` returns, so the adapter can acknowledge
//! the platform at once. Everything else happens after, in each chat's arrival
//! order; after a crash the journal's unanswered events take the same path.

use async_trait::async_trait;
use std::time::Duration;

use switchboard_channel_core::{DeliverError, InboundEvent, InboundKind, InboundSink, RecentChat};

use super::dispatch::Dispatcher;
use super::journal::{Journal, Recorded};
use super::lanes::{self, Lanes};
use super::owners::Owners;
use super::waiting::Arrival;
use crate::metrics::{InboundKindLabel, InboundOutcome};
use crate::store::StoreResult;

#[derive(Clone)]
pub struct Ingress {
    journal: Journal,
    dispatcher: Dispatcher,
    /// One lane per chat (`ChatKey::id`): its events are judged in arrival order.
    lanes: Lanes,
    /// Which chats this process answers.
    owners: Owners,
}

impl Ingress {
    pub fn new(journal: Journal, dispatcher: Dispatcher, owners: Owners) -> Ingress {
        Ingress { journal, dispatcher, lanes: Lanes::new(lanes::CHAT_IDLE), owners }
    }

    /// Queues an event taken for handling here in its chat's lane. With
    /// replicas, it is judged only once this replica holds the chat; otherwise
    /// it is handed back to the journal, for the replica that holds the chat.
    pub(super) fn enqueue(&self, event: InboundEvent, arrival: Arrival) {
        let chat = event.kind.chat().id();
        let (dispatcher, owners, journal) = (self.dispatcher.clone(), self.owners.clone(), self.journal.clone());
        let lane = chat.clone();
        self.lanes.push(
            &lane,
            Box::pin(async move {
                let Some(_using) = owners.take(&chat).await else {
                    journal.disown(&event.event_id);
                    owners.hand_over().await;
                    return;
                };
                // Another replica may have answered it since it was taken here
                // (while this one did not hold the chat).
                if owners.shared() && journal.get(&event.event_id).await.is_ok_and(|r| r.is_some_and(|r| r.done)) {
                    journal.disown(&event.event_id);
                    return;
                }
                dispatcher.handle(event, arrival).await
            }),
        );
    }

    /// Queues every unanswered event, oldest first (after a restart).
    pub async fn replay(&self) -> StoreResult<usize> {
        let unfinished = self.journal.unfinished().await?;
        let count = unfinished.len();
        for record in unfinished {
            self.enqueue(record.event, Arrival::Again);
        }
        Ok(count)
    }
}

/// How an event the journal `recorded` is handled here, if at all. Stored now,
/// it is a first attempt only in a process alone on its store: with replicas,
/// this one's hold on the chat can lapse while the event waits here, and the
/// replica that takes the chat over answers it first (it finds the event
/// unanswered), before the turn here runs.
fn arrival(recorded: Recorded, replicas: bool) -> Option<Arrival> {
    match recorded {
        Recorded::Now if !replicas => Some(Arrival::New),
        Recorded::Now | Recorded::Before => Some(Arrival::Late),
        Recorded::Duplicate => None,
    }
}

#[async_trait]
impl InboundSink for Ingress {
    async fn deliver(&self, event: InboundEvent) -> Result<(), DeliverError> {
        let channel = event.kind.chat().channel.clone();
        let kind = match &event.kind {
            InboundKind::Message(_) => InboundKindLabel::Message,
            InboundKind::Command(_) => InboundKindLabel::Command,
            InboundKind::Click(_) => InboundKindLabel::Click,
        };
        let count = |outcome| crate::metrics::global().inbound(&channel, kind, outcome);
        match self.journal.record(&event).await.map(|recorded| arrival(recorded, self.owners.shared())) {
            Ok(Some(arrival)) => {
                count(InboundOutcome::Accepted);
                self.enqueue(event, arrival);
                Ok(())
            }
            Ok(None) => {
                // Seen before: acknowledged, not handled twice.
                count(InboundOutcome::Duplicate);
                Ok(())
            }
            Err(e) => {
                count(InboundOutcome::Failed);
                tracing::error!(error = %e, "cannot journal an inbound event");
                Err(DeliverError("the journal is unavailable".into()))
            }
        }
    }

    async fn recent_chats(&self, channel: &str, within: Duration) -> Vec<RecentChat> {
        let since = crate::store::now_ms().saturating_sub(within.as_millis() as u64);
        self.journal.recent_chats(channel, since).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list recently active chats");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an event stored by its own hand-over, in a process alone on its
    /// store, skips the search for an earlier attempt's work.
    #[test]
    fn an_event_stored_now_is_new_only_without_replicas() {
        assert_eq!(arrival(Recorded::Now, false), Some(Arrival::New));
        assert_eq!(arrival(Recorded::Now, true), Some(Arrival::Late), "another replica may answer it first");
        for replicas in [false, true] {
            assert_eq!(arrival(Recorded::Before, replicas), Some(Arrival::Late));
            assert_eq!(arrival(Recorded::Duplicate, replicas), None);
        }
    }
}
