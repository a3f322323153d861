//! The one path of a person's decision on an approval request, whatever carried
//! it (a button, `/approve`, `/deny`, the operator's command line): record it;
//! then either the turn waiting for it wakes and updates the prompt itself, or,
//! when no turn in this process waits (it was asked before a restart), the prompt
//! is updated here and the conversation's turn resumed. Expiry and `/cancel` end
//! a request inside its waiting turn, which updates the prompt the same way.

use std::sync::Arc;

use switchboard_channel_core::{ChatKey, SentRef};

use super::owners::Owners;
use super::prompts::Prompts;
use super::turns::Turns;
use crate::agent::AgentBackend;
use crate::policy::approvals::{Choice, DecideError, Decided, Decider};
use crate::store::{ApprovalRecord, ApprovalState};

/// Where a decision came from.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    /// The operator's command line.
    Operator,
    /// A command (`/approve`, `/deny`) in a chat.
    Command(&'a ChatKey),
    /// A button on message `message` of `chat`.
    Button { chat: &'a ChatKey, message: &'a SentRef },
}

impl<'a> Via<'a> {
    fn chat(self) -> Option<&'a ChatKey> {
        match self {
            Via::Operator => None,
            Via::Command(chat) | Via::Button { chat, .. } => Some(chat),
        }
    }
}

#[derive(Clone)]
pub struct Decisions {
    backend: Arc<dyn AgentBackend>,
    prompts: Prompts,
    turns: Turns,
    /// Which chats this process answers: a turn continues only where its chat is.
    owners: Owners,
}

impl Decisions {
    pub fn new(backend: Arc<dyn AgentBackend>, prompts: Prompts, turns: Turns, owners: Owners) -> Decisions {
        Decisions { backend, prompts, turns, owners }
    }

    /// Whether the request's prompt was shown in `chat` (a copy is recorded there).
    pub async fn shown_in(&self, id: &str, chat: &ChatKey) -> crate::store::StoreResult<bool> {
        self.prompts.shown_in(id, chat).await
    }

    /// Decides request `id`. `via` is where the decision came from: its chat is
    /// where the turn continues if the request's own chat is unknown.
    pub async fn decide(
        &self,
        id: &str,
        decider: &Decider,
        choice: Choice,
        reason: Option<String>,
        via: Via<'_>,
    ) -> Result<ApprovalRecord, DecideError> {
        // A prompt shown just before a crash was not recorded, and is found only
        // when someone presses its buttons: read the record before the decision
        // lets a waiting turn resolve (and forget) it.
        let unrecorded = match via {
            Via::Button { chat, message } => {
                (!self.prompts.has_copy(id, chat, message).await).then_some((chat, message))
            }
            _ => None,
        };
        let Decided { approval, waiter_woken } = match self.backend.decide_approval(id, decider, choice, reason).await {
            Ok(decided) => decided,
            Err(DecideError::NotPending) => {
                // Ended already (decided, expired while the daemon was down, or
                // cancelled): the buttons pressed on must not stay.
                if let Via::Button { chat, message } = via {
                    self.show_ended(id, chat, message).await;
                }
                return Err(DecideError::NotPending);
            }
            Err(e) => return Err(e),
        };
        // The decision counted, so the presser was entitled: update what they pressed.
        if let Some((chat, message)) = unrecorded {
            let by = approval.decided_by.as_deref();
            self.prompts.resolve_copy(chat, message, approval.state, by).await;
        }
        if !waiter_woken {
            // Where it was asked, read before resolving forgets the prompts.
            let asked_in = self.prompts.chat_of(&approval.id).await.or_else(|| via.chat().cloned());
            self.prompts.resolve(&approval.id, approval.state, approval.decided_by.as_deref()).await;
            match asked_in {
                // With replicas, the chat's holder continues: its waiting turn reads
                // the decision within a second, or it replays the chat's event.
                Some(chat) => match self.owners.take(&chat.id()).await {
                    Some(_using) => self.turns.resume(&approval, chat),
                    None => tracing::info!(approval = %approval.id, "decided; the replica holding its chat continues"),
                },
                None => tracing::warn!(approval = %approval.id, "a decided request has no chat to continue in"),
            }
        }
        Ok(approval)
    }

    /// Cancels the conversation's pending requests (left with `/new`, stopped with
    /// `/cancel`), only those of `requester` when given, and shows it on their
    /// prompts; returns how many there were.
    pub async fn settle(&self, conversation_id: &str, requester: Option<&str>, reason: &str) -> usize {
        match self.backend.cancel_approvals(conversation_id, requester, reason).await {
            Ok(cancelled) => {
                for approval in &cancelled {
                    self.prompts.resolve(&approval.id, approval.state, None).await;
                }
                cancelled.len()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot cancel pending requests");
                0
            }
        }
    }

    /// After a restart: requests that expired while the daemon was down get their
    /// prompts updated (they were denied).
    /// Shows on a pressed prompt how its request ended, if it did. Only in the
    /// chat it was asked in or one holding a recorded copy: forged button data
    /// elsewhere edits no message.
    async fn show_ended(&self, id: &str, chat: &ChatKey, message: &SentRef) {
        match self.backend.approval(id).await {
            Ok(Some(approval))
                if approval.state != ApprovalState::Pending
                    && (approval.chat.as_deref() == Some(chat.id().as_str())
                        || self.prompts.shown_in(id, chat).await.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "cannot read where a prompt was shown");
                            false
                        })) =>
            {
                let by = approval.decided_by.as_deref();
                self.prompts.resolve_copy(chat, message, approval.state, by).await;
                self.prompts.resolve(&approval.id, approval.state, by).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read an approval"),
        }
    }

    pub async fn settle_expired(&self, expired: &[ApprovalRecord]) {
        for approval in expired {
            self.prompts.resolve(&approval.id, approval.state, None).await;
        }
    }
}
