//! The gateway's front door: an event is journaled (and recognised if the
//! platform redelivers it) and `deliver` returns, so the adapter can acknowledge
//! the platform at once. Everything else happens after, in each chat's arrival
//! order; after a crash the journal's unanswered events take the same path.

use async_trait::async_trait;
use std::time::Duration;

use switchboard_channel_core::{DeliverError, InboundEvent, InboundKind, InboundSink, RecentChat};

use super::dispatch::Dispatcher;
use super::journal::Journal;
use super::lanes::{self, Lanes};
use crate::metrics::{InboundKindLabel, InboundOutcome};
use crate::store::StoreResult;

#[derive(Clone)]
pub struct Ingress {
    journal: Journal,
    dispatcher: Dispatcher,
    /// One lane per chat (`ChatKey::id`): its events are judged in arrival order.
    lanes: Lanes,
}

impl Ingress {
    pub fn new(journal: Journal, dispatcher: Dispatcher) -> Ingress {
        Ingress { journal, dispatcher, lanes: Lanes::new(lanes::CHAT_IDLE) }
    }

    fn enqueue(&self, event: InboundEvent) {
        let chat = event.kind.chat().id();
        let dispatcher = self.dispatcher.clone();
        self.lanes.push(&chat, Box::pin(async move { dispatcher.handle(event).await }));
    }

    /// Queues every unanswered event, oldest first (after a restart).
    pub async fn replay(&self) -> StoreResult<usize> {
        let unfinished = self.journal.unfinished().await?;
        let count = unfinished.len();
        for record in unfinished {
            self.enqueue(record.event);
        }
        Ok(count)
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
        match self.journal.record(&event).await {
            Ok(true) => {
                count(InboundOutcome::Accepted);
                self.enqueue(event);
                Ok(())
            }
            Ok(false) => {
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
