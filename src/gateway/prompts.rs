//! Approval prompts in chats: shown once per request (a replayed turn does not
//! ask again), remembered durably with every place they were shown, and replaced
//! by the request's outcome when it ends, however it ended.
//!
//! Who sees the buttons: when the person who asked may decide (an admin, or a
//! user where users decide their own requests), the chat that asked. Otherwise
//! the chat is told the request waits for an approver, and the prompt with its
//! buttons goes to each approver's direct chat on that channel; only when no
//! approver can be reached there do the buttons appear in the chat itself (where
//! only an approver's press counts).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ApprovalPrompt, Channel, ChatKey, SentRef};

use super::journal::{decode, encode};
use super::names::Names;
use super::registry::Registry;
use super::retry;
use crate::policy::approvals::{outcome_text, request_text, Choice};
use crate::policy::Tier;
use crate::store::{blocking, ApprovalState, Store};

const PROMPTS: &str = "approval-prompts";

/// One place a request was shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Copy {
    chat: ChatKey,
    sent: SentRef,
}

/// Every place a request was shown, the asking chat first.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PromptRecord {
    copies: Vec<Copy>,
}

/// The request a prompt is for.
pub struct Request<'a> {
    pub approval_id: &'a str,
    pub summary: &'a str,
    /// The chat that asked.
    pub chat: &'a ChatKey,
    pub requester: &'a str,
    pub requester_tier: Tier,
    /// Whether `summary` shows the whole call; if not, a chat may only deny it.
    pub complete: bool,
}

/// A [`Request`] that a background retry can keep.
struct OwnedRequest {
    approval_id: String,
    summary: String,
    chat: ChatKey,
    requester: String,
    requester_tier: Tier,
    complete: bool,
}

impl OwnedRequest {
    fn of(r: &Request<'_>) -> OwnedRequest {
        OwnedRequest {
            approval_id: r.approval_id.to_string(),
            summary: r.summary.to_string(),
            chat: r.chat.clone(),
            requester: r.requester.to_string(),
            requester_tier: r.requester_tier,
            complete: r.complete,
        }
    }

    fn borrowed(&self) -> Request<'_> {
        Request {
            approval_id: &self.approval_id,
            summary: &self.summary,
            chat: &self.chat,
            requester: &self.requester,
            requester_tier: self.requester_tier,
            complete: self.complete,
        }
    }
}

#[derive(Clone)]
pub struct Prompts {
    store: Arc<dyn Store>,
    registry: Registry,
    names: Names,
    users_approve_own: bool,
}

impl Prompts {
    pub fn new(store: Arc<dyn Store>, registry: Registry, names: Names, users_approve_own: bool) -> Prompts {
        Prompts { store, registry, names, users_approve_own }
    }

    /// Shows the request unless it was shown before. When no copy could be
    /// shown (the platform failed a whole round), it is tried again in the
    /// background every few seconds while the request is pending: a request
    /// nobody can see would hold its conversation until it expired.
    pub async fn show(&self, request: &Request<'_>) {
        if self.show_once(request).await {
            return;
        }
        let (prompts, owned) = (self.clone(), OwnedRequest::of(request));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(retry::RETRY_EVERY).await;
                if !prompts.pending(&owned.approval_id).await {
                    return;
                }
                if prompts.show_once(&owned.borrowed()).await {
                    tracing::info!("an approval prompt was shown after earlier attempts failed");
                    return;
                }
            }
        });
    }

    /// Whether the request still waits for a decision.
    async fn pending(&self, approval_id: &str) -> bool {
        let id = approval_id.to_string();
        let record = blocking(&self.store, move |s| s.approval(&id)).await.ok().flatten();
        record.is_some_and(|a| a.state == ApprovalState::Pending)
    }

    /// One attempt at showing every copy; whether the request is shown (now or before).
    async fn show_once(&self, request: &Request<'_>) -> bool {
        if self.find(request.approval_id).await.is_some() {
            return true;
        }
        // A channel not served now: nothing can show it (nor will retrying).
        let Some(served) = self.registry.get(&request.chat.channel) else { return true };
        let channel = served.channel.clone();
        let may_decide = match request.requester_tier {
            Tier::Admin => true,
            Tier::User => self.users_approve_own,
            Tier::Guest => false,
        };
        let mut record = PromptRecord::default();
        if may_decide {
            record.copies.extend(self.send(&*channel, request.chat, &buttons_prompt(request, None)).await);
        } else {
            let waiting = format!("Waiting for an approver: {}", request_text(request.summary));
            let note = ApprovalPrompt { text: waiting, buttons: Vec::new(), commands: Vec::new() };
            // The name is a label anyone can choose; the id says who it really is.
            let asked_by = format!("{} ({})", self.names.display(request.requester), request.requester);
            let prompt = buttons_prompt(request, Some(&format!("asked by {asked_by} in {}", request.chat.id())));
            let mut approvers = Vec::new();
            if channel.capabilities().direct_chats {
                for admin in served.access.admin_ids().into_iter().filter(|a| a != request.requester) {
                    match channel.open_direct(&admin).await {
                        Ok(direct) if direct != *request.chat => approvers.push(direct),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot reach an approver directly"),
                    }
                }
            }
            if approvers.is_empty() {
                // Nobody to ask privately: the buttons go where an approver may see them.
                record.copies.extend(self.send(&*channel, request.chat, &prompt).await);
            } else {
                record.copies.extend(self.send(&*channel, request.chat, &note).await);
                for direct in &approvers {
                    record.copies.extend(self.send(&*channel, direct, &prompt).await);
                }
            }
        }
        if record.copies.is_empty() {
            return false;
        }
        let key = request.approval_id.to_string();
        if let Err(e) = blocking(&self.store, move |s| s.kv_put(PROMPTS, &key, &encode(&record))).await {
            tracing::error!(error = %e, "cannot remember an approval prompt");
        }
        true
    }

    async fn send(&self, channel: &dyn Channel, chat: &ChatKey, prompt: &ApprovalPrompt) -> Option<Copy> {
        let mut prompt = prompt.clone();
        if !channel.capabilities().buttons {
            prompt.buttons.clear();
        }
        match retry::round(channel.name(), || channel.show_approval(chat, &prompt)).await {
            Ok(sent) => Some(Copy { chat: chat.clone(), sent }),
            Err(e) => {
                tracing::error!(error = %e, "could not show an approval prompt");
                None
            }
        }
    }

    /// Whether the request's prompt has a recorded copy in `chat`.
    pub async fn shown_in(&self, approval_id: &str, chat: &ChatKey) -> bool {
        let record = self.find(approval_id).await.unwrap_or_default();
        record.copies.iter().any(|c| c.chat == *chat)
    }

    /// Whether message `sent` of `chat` is a recorded copy of the request's prompt.
    pub async fn has_copy(&self, approval_id: &str, chat: &ChatKey, sent: &SentRef) -> bool {
        let record = self.find(approval_id).await.unwrap_or_default();
        record.copies.iter().any(|c| c.chat == *chat && c.sent == *sent)
    }

    /// The chat the request was asked in.
    pub async fn chat_of(&self, approval_id: &str) -> Option<ChatKey> {
        self.find(approval_id).await.and_then(|p| p.copies.into_iter().next()).map(|c| c.chat)
    }

    async fn find(&self, approval_id: &str) -> Option<PromptRecord> {
        let key = approval_id.to_string();
        let bytes = blocking(&self.store, move |s| s.kv_get(PROMPTS, &key)).await.ok().flatten()?;
        // Records from before copies held one chat and message.
        decode::<PromptRecord>(&bytes).or_else(|| decode::<Copy>(&bytes).map(|c| PromptRecord { copies: vec![c] }))
    }

    /// Replaces the buttons of one prompt message with how the request ended.
    pub async fn resolve_copy(&self, chat: &ChatKey, sent: &SentRef, outcome: ApprovalState, decided_by: Option<&str>) {
        let by = decided_by.map(|d| self.names.display(d));
        let text = outcome_text(outcome, by.as_deref());
        let Some(channel) = self.registry.channel(&chat.channel) else { return };
        if let Err(e) = retry::round(&chat.channel, || channel.resolve_approval(chat, sent, &text)).await {
            tracing::warn!(error = %e, "could not update an approval prompt");
        }
    }

    /// Replaces every copy's buttons with how the request ended, and forgets it.
    pub async fn resolve(&self, approval_id: &str, outcome: ApprovalState, decided_by: Option<&str>) {
        let Some(record) = self.find(approval_id).await else { return };
        for copy in &record.copies {
            self.resolve_copy(&copy.chat, &copy.sent, outcome, decided_by).await;
        }
        let key = approval_id.to_string();
        let _ = blocking(&self.store, move |s| s.kv_remove(PROMPTS, &key)).await;
    }
}

/// The question with its three buttons (and the text commands, for channels
/// without buttons); `context` says where it comes from when shown elsewhere.
fn buttons_prompt(request: &Request<'_>, context: Option<&str>) -> ApprovalPrompt {
    let mut text = request_text(request.summary);
    if let Some(context) = context {
        text.push_str(&format!(" ({context})"));
    }
    // What is not shown whole can only be denied here.
    let choices: &[Choice] = if request.complete { &Choice::ALL } else { &[Choice::Deny] };
    let mut commands = vec![("Deny".to_string(), "/deny".to_string())];
    if request.complete {
        commands.insert(0, ("Allow once".into(), "/approve".into()));
    }
    ApprovalPrompt {
        text,
        buttons: choices.iter().map(|c| (c.label().to_string(), button_data(*c, request.approval_id))).collect(),
        commands,
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
        assert!(data.len() <= 64, "fits the smallest platform limit (64 bytes)");
        assert_eq!(parse_button(&data), Some((Choice::AlwaysAllowHere, "apr-0123")));
        assert_eq!(parse_button("apr:x:apr-1"), None);
        assert_eq!(parse_button("apr:o:conv-1"), None);
        assert_eq!(parse_button("other"), None);
    }

    #[test]
    fn old_single_copy_records_still_read() {
        let old = br#"{"chat":{"channel":"fake","account":"b","chat":"1","thread":null},"sent":{"message_id":"9"}}"#;
        let read =
            decode::<PromptRecord>(old).or_else(|| decode::<Copy>(old).map(|c| PromptRecord { copies: vec![c] }));
        assert_eq!(read.unwrap().copies[0].sent.message_id, "9");
    }
}
