//! Approval prompts in chats: shown once per request (a replayed turn does not
//! ask again) through the outbox like every other send, remembered durably with
//! every place they were shown (`prompt_records`), and replaced by the request's
//! outcome when it ends, however it ended.
//!
//! Who sees the buttons: when the person who asked may decide (an admin, or a
//! user where users decide their own requests), the chat that asked. Otherwise
//! the chat is told the request waits for an approver, and the prompt with its
//! buttons goes to each approver's direct chat on that channel; only when no
//! approver can be reached there do the buttons appear in the chat itself (where
//! only an approver's press counts).

use std::sync::Arc;

use switchboard_channel_core::{ApprovalPrompt, ChatKey, SentRef};

use super::delivery::Delivery;
use super::names::Names;
use super::outbox::PromptPart;
use super::prompt_records::PromptRecords;
use super::registry::Registry;
use super::retry;
use crate::agent::AgentBackend;
use crate::policy::approvals::{outcome_text, request_text, Choice};
use crate::policy::Tier;
use crate::store::ApprovalState;

/// The most characters of a requester's display name a prompt shows (once
/// spelled out).
const NAME_SHOWN: usize = 64;

/// Characters that look like a guillemet or could pass for one at a glance
/// (single and double angle quotes, angle brackets, much-less/greater-than
/// signs, ornaments), which a name might use to seem to end its «».
const GUILLEMET_LIKE: &[char] = &[
    '«', '»', '‹', '›', '≪', '≫', '⋘', '⋙', '⪡', '⪢', '⫷', '⫸', '《', '》', '〈', '〉', '⟨', '⟩', '⟪', '⟫', '❬', '❭',
    '❮', '❯', '❰', '❱', '⦑', '⦒', '⧼', '⧽', '＜', '＞', '﹤', '﹥', '<', '>', 'ᐸ', 'ᐳ', '\u{2329}', '\u{232a}', '˂',
    '˃',
];

/// A display name as a prompt shows it: a label anyone can choose, so on one
/// line, spelled out like the call (nothing can turn the line around), with no
/// guillemet of its own nor anything like one (it cannot seem to end the «»
/// that set it apart) and short. The id after it says who it really is.
fn name_shown(name: &str) -> String {
    let spelled = crate::policy::summary::visible(name);
    let mut shown = String::new();
    for c in spelled.chars() {
        match c {
            c if c == '\n' || GUILLEMET_LIKE.contains(&c) => shown.push_str(&crate::policy::summary::spelled_out(c)),
            c => shown.push(c),
        }
    }
    match shown.char_indices().nth(NAME_SHOWN) {
        Some((cut, _)) => {
            let mut kept = &shown[..cut];
            // Never half a spelled-out character: what is left of it goes too.
            let escape = crate::policy::summary::SPELLED_OUT_START;
            if let Some(start) = kept.rfind(escape).filter(|&start| !kept[start..].contains('}')) {
                kept = &kept[..start];
            }
            format!("{kept}…")
        }
        None => shown,
    }
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

#[derive(Clone)]
pub struct Prompts {
    backend: Arc<dyn AgentBackend>,
    records: PromptRecords,
    registry: Registry,
    names: Names,
    delivery: Delivery,
    users_approve_own: bool,
}

impl Prompts {
    pub fn new(
        backend: Arc<dyn AgentBackend>,
        records: PromptRecords,
        registry: Registry,
        names: Names,
        delivery: Delivery,
        users_approve_own: bool,
    ) -> Prompts {
        Prompts { backend, records, registry, names, delivery, users_approve_own }
    }

    /// Shows the request unless it was shown (or stored for showing) before.
    /// Every copy goes through the outbox: stored first, shown by its one owner,
    /// tried again while the platform fails (a request nobody can see would hold
    /// its conversation until it expired), resent after a restart.
    pub async fn show(&self, request: &Request<'_>) {
        if !self.records.copies(request.approval_id).await.is_empty() {
            return;
        }
        // A channel not served now: nothing can show it.
        let Some(served) = self.registry.get(&request.chat.channel) else { return };
        let channel = served.channel.clone();
        let may_decide = match request.requester_tier {
            Tier::Admin => true,
            Tier::User => self.users_approve_own,
            Tier::Guest => false,
        };
        let mut copies: Vec<(ChatKey, ApprovalPrompt)> = Vec::new();
        if may_decide {
            copies.push((request.chat.clone(), buttons_prompt(request, None)));
        } else {
            let waiting = format!("Waiting for an approver: {}", request_text(request.summary));
            let note = ApprovalPrompt { text: waiting, buttons: Vec::new(), commands: Vec::new() };
            let asked_by = format!("«{}» ({})", name_shown(&self.names.display(request.requester)), request.requester);
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
                copies.push((request.chat.clone(), prompt));
            } else {
                copies.push((request.chat.clone(), note));
                copies.extend(approvers.into_iter().map(|direct| (direct, prompt.clone())));
            }
        }
        // A channel that cannot show a prompt whole shows it cut, and then no chat
        // may allow it: noted on the request first (a decision can come as soon as
        // it shows), then shown deny-only.
        if request.complete && copies.iter().any(|(_, prompt)| !channel.shows_whole(&prompt.text)) {
            if let Err(e) = self.backend.approval_shown_cut(request.approval_id).await {
                // Not shown at all: a chat could still allow it with `/approve`. It
                // waits for the operator or expires.
                return tracing::error!(error = %e, "cannot note that an approval's prompt is shown cut; not shown");
            }
            for (_, prompt) in copies.iter_mut().filter(|(_, prompt)| !prompt.buttons.is_empty()) {
                offer_choices(prompt, request.approval_id, false);
            }
        }
        if let Err(e) = self.records.set_asked_in(request.approval_id, request.chat).await {
            tracing::warn!(error = %e, "cannot note where an approval was asked");
        }
        for (chat, prompt) in copies {
            let part =
                PromptPart { approval_id: request.approval_id.to_string(), prompt, asked_in: request.chat.clone() };
            self.delivery.show_prompt(&chat, part).await;
        }
    }

    /// Whether the request's prompt has a recorded copy in `chat`.
    pub async fn shown_in(&self, approval_id: &str, chat: &ChatKey) -> crate::store::StoreResult<bool> {
        Ok(self.records.read_copies(approval_id).await?.iter().any(|c| c.chat == *chat))
    }

    /// Whether message `sent` of `chat` is a recorded copy of the request's prompt.
    pub async fn has_copy(&self, approval_id: &str, chat: &ChatKey, sent: &SentRef) -> bool {
        self.records.copies(approval_id).await.iter().any(|c| c.chat == *chat && c.sent == *sent)
    }

    /// The chat the request was asked in (noted when its prompts were queued).
    pub async fn chat_of(&self, approval_id: &str) -> Option<ChatKey> {
        self.records.asked_in(approval_id).await
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

    /// Replaces every shown copy's buttons with how the request ended, and
    /// forgets them. A copy still waiting in the outbox is not shown any more.
    pub async fn resolve(&self, approval_id: &str, outcome: ApprovalState, decided_by: Option<&str>) {
        for copy in self.records.copies(approval_id).await {
            self.resolve_copy(&copy.chat, &copy.sent, outcome, decided_by).await;
        }
        self.records.forget(approval_id).await;
    }
}

/// The question with its three buttons (and the text commands, for channels
/// without buttons); `context` says where it comes from when shown elsewhere.
fn buttons_prompt(request: &Request<'_>, context: Option<&str>) -> ApprovalPrompt {
    // Where it comes from first: a prompt too long for its chat is cut at the end.
    let mut text = request_text(request.summary);
    if let Some(context) = context {
        text = format!("({context})\n{text}");
    }
    let mut prompt = ApprovalPrompt { text, buttons: Vec::new(), commands: Vec::new() };
    offer_choices(&mut prompt, request.approval_id, request.complete);
    prompt
}

/// Sets the prompt's buttons and text commands: every choice, or only Deny for
/// a request not shown whole.
fn offer_choices(prompt: &mut ApprovalPrompt, approval_id: &str, complete: bool) {
    let choices: &[Choice] = if complete { &Choice::ALL } else { &[Choice::Deny] };
    prompt.buttons = choices.iter().map(|c| (c.label().to_string(), button_data(*c, approval_id))).collect();
    prompt.commands = vec![("Deny".to_string(), "/deny".to_string())];
    if complete {
        prompt.commands.insert(0, ("Allow once".into(), "/approve".into()));
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

    /// A name cannot seem to end its «» with a look-alike and name another id.
    #[test]
    fn a_name_cannot_close_its_quotes_with_a_look_alike() {
        for closer in ['»', '›', '≫', '》', '〉', '⟩', '❯', '＞', '>'] {
            let shown = name_shown(&format!("Bob{closer} (fake:7)"));
            assert!(!shown.contains(closer), "{closer:?} shows as itself in {shown}");
            assert_eq!(shown, format!("Bob\\u{{{:x}}} (fake:7)", closer as u32));
        }
        assert_eq!(name_shown("Ann «the admin»"), "Ann \\u{ab}the admin\\u{bb}");
        assert_eq!(name_shown("plain name"), "plain name");
        let long = format!("{}» (fake:7)", "x".repeat(60));
        assert_eq!(name_shown(&long), format!("{}…", "x".repeat(60)), "no half of a spelled-out »");
    }
}
