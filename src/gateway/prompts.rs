//! Approval prompts in chats: shown once per request (a replayed turn does not
//! ask again), remembered durably with where they were shown, and replaced by
//! the request's outcome when it ends, however it ended.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ApprovalPrompt, ChatKey, SentRef};

use super::journal::{decode, encode};
use super::names::Names;
use super::registry::Registry;
use super::retry;
use crate::policy::approvals::{outcome_text, request_text, Choice};
use crate::store::{blocking, ApprovalState, Store};

const PROMPTS: &str = "approval-prompts";

/// Where an approval prompt was shown.
#[derive(Serialize, Deserialize)]
struct PromptRecord {
    chat: ChatKey,
    sent: SentRef,
}

#[derive(Clone)]
pub struct Prompts {
    store: Arc<dyn Store>,
    registry: Registry,
    names: Names,
}

impl Prompts {
    pub fn new(store: Arc<dyn Store>, registry: Registry, names: Names) -> Prompts {
        Prompts { store, registry, names }
    }

    /// Shows the request in `chat` unless it was shown before.
    pub async fn show(&self, chat: &ChatKey, approval_id: &str, summary: &str) {
        if self.find(approval_id).await.is_some() {
            return;
        }
        let Some(channel) = self.registry.channel(&chat.channel) else { return };
        let buttons = match channel.capabilities().buttons {
            true => Choice::ALL.iter().map(|c| (c.label().to_string(), button_data(*c, approval_id))).collect(),
            false => Vec::new(),
        };
        let prompt = ApprovalPrompt {
            text: request_text(summary),
            buttons,
            commands: vec![("Allow once".into(), "/approve".into()), ("Deny".into(), "/deny".into())],
        };
        match retry::round(|| channel.show_approval(chat, &prompt)).await {
            Ok(sent) => {
                let record = PromptRecord { chat: chat.clone(), sent };
                let key = approval_id.to_string();
                if let Err(e) = blocking(&self.store, move |s| s.kv_put(PROMPTS, &key, &encode(&record))).await {
                    tracing::error!(error = %e, "cannot remember an approval prompt");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not show an approval prompt"),
        }
    }

    /// The chat the request was shown in.
    pub async fn chat_of(&self, approval_id: &str) -> Option<ChatKey> {
        self.find(approval_id).await.map(|p| p.chat)
    }

    async fn find(&self, approval_id: &str) -> Option<PromptRecord> {
        let key = approval_id.to_string();
        blocking(&self.store, move |s| s.kv_get(PROMPTS, &key)).await.ok().flatten().and_then(|b| decode(&b))
    }

    /// Replaces the prompt's buttons with how the request ended, and forgets it.
    pub async fn resolve(&self, approval_id: &str, outcome: ApprovalState, decided_by: Option<&str>) {
        let Some(prompt) = self.find(approval_id).await else { return };
        let Some(channel) = self.registry.channel(&prompt.chat.channel) else { return };
        let by = decided_by.map(|d| self.names.display(d));
        let text = outcome_text(outcome, by.as_deref());
        if let Err(e) = retry::round(|| channel.resolve_approval(&prompt.chat, &prompt.sent, &text)).await {
            tracing::warn!(error = %e, "could not update an approval prompt");
        }
        let key = approval_id.to_string();
        let _ = blocking(&self.store, move |s| s.kv_remove(PROMPTS, &key)).await;
    }
}

/// Button data: `apr:<choice>:<approval id>`; only the store gives it meaning.
pub fn button_data(choice: Choice, approval_id: &str) -> String {
    format!("apr:{}:{approval_id}", choice.code())
}

/// The choice and approval id a button carries, if it is one of ours.
pub fn parse_button(data: &str) -> Option<(Choice, &str)> {
    let (code, id) = data.strip_prefix("apr:")?.split_once(':')?;
    let choice = Choice::parse(code)?;
    id.starts_with("apr-").then_some((choice, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_round_trip_and_forgeries_do_not_parse() {
        let data = button_data(Choice::AlwaysAllowHere, "apr-0123");
        assert!(data.len() <= 64, "fits Telegram's callback data");
        assert_eq!(parse_button(&data), Some((Choice::AlwaysAllowHere, "apr-0123")));
        assert_eq!(parse_button("apr:x:apr-1"), None);
        assert_eq!(parse_button("apr:o:conv-1"), None);
        assert_eq!(parse_button("other"), None);
    }
}
