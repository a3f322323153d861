//! The turns of every conversation: one at a time per conversation, in arrival
//! order; the running one can be cancelled; a turn whose approval was decided
//! after a restart is resumed here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_channel_core::{ChatKey, Sender};
use tokio_util::sync::CancellationToken;

use super::delivery::Delivery;
use super::journal::Journal;
use super::lanes::{self, Lanes};
use super::pacing::Pacer;
use super::prompts::Prompts;
use super::registry::Registry;
use super::turn::{self, TurnJob};
use crate::agent::AgentBackend;
use crate::store::ApprovalRecord;

#[derive(Clone)]
pub struct Turns {
    pub(super) backend: Arc<dyn AgentBackend>,
    pub(super) registry: Registry,
    pub(super) delivery: Delivery,
    pub(super) prompts: Prompts,
    pub(super) pacer: Pacer,
    pub(super) journal: Journal,
    lanes: Lanes,
    /// The running turn's canceller, by conversation.
    active: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Turns {
    pub fn new(
        backend: Arc<dyn AgentBackend>,
        registry: Registry,
        delivery: Delivery,
        prompts: Prompts,
        pacer: Pacer,
        journal: Journal,
    ) -> Turns {
        Turns {
            backend,
            registry,
            delivery,
            prompts,
            pacer,
            journal,
            lanes: Lanes::new(lanes::CONVERSATION_IDLE),
            active: Arc::default(),
        }
    }

    /// Runs `job` after the conversation's earlier work.
    pub fn queue(&self, job: TurnJob) {
        let conversation = job.conversation_id.clone();
        self.lanes.push(&conversation, Box::pin(turn::run(self.clone(), job)));
    }

    /// Runs other work (a listened message) in the conversation's order.
    pub fn queue_work(&self, conversation: &str, work: futures::future::BoxFuture<'static, ()>) {
        self.lanes.push(conversation, work);
    }

    /// Turns queued or running for the conversation.
    pub fn waiting(&self, conversation: &str) -> usize {
        self.lanes.len(conversation)
    }

    fn active(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_active(&self, conversation: &str, cancel: Option<CancellationToken>) {
        match cancel {
            Some(c) => self.active().insert(conversation.to_string(), c),
            None => self.active().remove(conversation),
        };
    }

    /// Cancels the conversation's running turn (which denies its pending approval).
    pub fn cancel(&self, conversation: &str) -> bool {
        self.active().get(conversation).map(|c| c.cancel()).is_some()
    }

    /// Continues a conversation whose approval was decided when no turn in this
    /// process waited for it (it was asked before a restart): in the chat that was
    /// asked, or `fallback` when that is unknown, as the person who asked.
    pub async fn resume(&self, approval: &ApprovalRecord, fallback: Option<&ChatKey>) {
        let Some(chat) = self.prompts.chat_of(&approval.id).await.or_else(|| fallback.cloned()) else {
            tracing::warn!(approval = %approval.id, "a decided request has no chat to continue in");
            return;
        };
        let requester = approval.requester.clone().unwrap_or_default();
        let sender = Sender { id: requester, name: String::new(), is_bot: false };
        let is_admin = self.registry.get(&chat.channel).is_some_and(|s| s.access.is_admin(&sender.id));
        self.queue(TurnJob {
            chat,
            sender,
            is_admin,
            conversation_id: approval.conversation_id.clone(),
            input: None,
            event_id: None,
            reply_to: None,
        });
    }
}
