//! The contract between the gateway and a platform adapter.
//!
//! An adapter turns platform events into [`InboundEvent`]s handed to an
//! [`InboundSink`], and carries out what the gateway asks through [`Channel`]:
//! sending and editing messages, typing, approval prompts, answering
//! interactions. It knows nothing of agents, stores or policies, and it never
//! retries a send on its own: it reports what happened as a [`ChannelError`] and
//! the gateway's outbox decides whether and when to try again.
//!
//! ## Receiving
//! * Every platform event the gateway should see becomes one [`InboundEvent`]
//!   whose `event_id` is stable across the platform's redeliveries.
//! * The adapter calls [`InboundSink::deliver`] and acknowledges the platform
//!   (moves the poll offset, answers the HTTP request, acks the envelope) only
//!   after it returned `Ok`: the event is then journaled and will be handled even
//!   across a crash. `deliver` returns quickly (it only journals); on `Err` the
//!   adapter leaves the event unacknowledged so the platform redelivers it, or
//!   retries the delivery itself with a backoff.
//! * Interactions (slash commands, button presses) are acknowledged within the
//!   platform's deadline by the adapter on its own, whatever the gateway is
//!   doing. The gateway's answer comes later: a message with
//!   [`SendOptions::interaction`] set, or [`Channel::close_interaction`].
//! * The bot's own messages and other bots' messages are either dropped or
//!   delivered with [`Sender::is_bot`](crate::Sender) set; never as a person's.
//!
//! ## Sending
//! * `send` and `edit` get one part that already fits
//!   [`Capabilities::max_message_len`], as blocks; the adapter renders them in
//!   its own format (and may fall back to plain text when the platform refuses
//!   the formatted version).
//! * Sending, editing, prompts and closing interactions may be called before
//!   [`Channel::start`] (to finish what a previous run left after a restart).
//! * Each call is one attempt. Errors mean: [`ChannelError::RateLimited`]: the
//!   platform asked to wait this long; [`ChannelError::Transient`]: the same
//!   call may work later (network, 5xx); [`ChannelError::Rejected`]: it never
//!   will (bad request, forbidden, chat gone); [`ChannelError::Unsupported`]:
//!   the platform has no such thing, and the gateway falls back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::chat::{ApprovalPrompt, ChatKey, ChatKind, InboundEvent, Interaction, SendOptions, SentRef};
use crate::ingress::Ingress;
use crate::markdown::{Block, Span};

/// How a platform counts the length of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// UTF-16 code units of the visible text (Telegram).
    Utf16,
    /// Unicode scalar values (Discord, Slack).
    Chars,
}

impl LengthUnit {
    /// The length of `text` in this unit.
    pub fn measure(self, text: &str) -> usize {
        match self {
            LengthUnit::Utf16 => text.encode_utf16().count(),
            LengthUnit::Chars => text.chars().count(),
        }
    }
}

/// What a platform can do, as the gateway reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The longest message, in `length_unit`s of its visible text.
    pub max_message_len: usize,
    /// How `max_message_len` is counted.
    pub length_unit: LengthUnit,
    /// Whether a sent message can be edited (streaming replies need it).
    pub can_edit: bool,
    /// The least time between two edits or sends in one chat that the platform
    /// tolerates; the gateway paces streaming to at most one edit per interval.
    pub min_edit_interval: Duration,
    /// How long one [`Channel::typing`] call shows the indicator; the gateway
    /// repeats it at this interval. `None`: the platform has no indicator.
    pub typing_lasts: Option<Duration>,
    /// Buttons under a message, whose presses arrive as clicks. Without them the
    /// gateway's prompts carry no buttons, only the text commands that decide.
    pub buttons: bool,
    /// Messages only one person in a group sees ([`crate::Visibility::Private`]).
    /// Without them the gateway says in the chat only what everyone may read.
    pub ephemeral: bool,
    /// The bot can open a direct chat with a person ([`Channel::open_direct`]), for
    /// asking approvers privately.
    pub direct_chats: bool,
}

/// Why a call to the platform failed, and so what the gateway should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The platform asked us to slow down; the same call may work after this long.
    #[error("rate limited; retry after {0:?}")]
    RateLimited(Duration),
    /// Worth retrying (network, 5xx). The text is safe to log (no tokens).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying the same request will not help (bad request, forbidden, gone).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The platform has no such feature; the gateway uses a fallback.
    #[error("not supported by this channel: {0}")]
    Unsupported(&'static str),
}

/// `deliver` could not journal the event: do not acknowledge it to the platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the gateway could not store the event ({0}); leave it unacknowledged and deliver it again")]
pub struct DeliverError(pub String);

/// Where an adapter hands inbound events.
#[async_trait]
pub trait InboundSink: Send + Sync {
    /// Journals the event (a redelivered `event_id` is recognised and not handled
    /// twice) and returns; everything else happens later. `Ok` means the adapter
    /// may acknowledge the event to the platform.
    async fn deliver(&self, event: InboundEvent) -> Result<(), DeliverError>;

    /// The chats of `channel` that had events within `within`, newest activity
    /// first, for an adapter catching up on what was sent while the daemon was
    /// down (the platform may not list them itself). Default: none known.
    async fn recent_chats(&self, channel: &str, within: Duration) -> Vec<RecentChat> {
        let _ = (channel, within);
        Vec::new()
    }
}

/// A chat with recent activity, as the gateway's journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentChat {
    /// Where.
    pub chat: ChatKey,
    /// Direct or group, as the newest event there said.
    pub kind: ChatKind,
    /// The newest journaled event there (its `event_id`): what came after it
    /// was missed.
    pub last_event: String,
}

/// One platform account, as the gateway drives it. See the module documentation
/// for the rules every method follows.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The channel's registered name (`telegram`): [`ChatKey::channel`] of its chats.
    fn name(&self) -> &str;

    /// What the platform can do. Constant for the life of the channel.
    fn capabilities(&self) -> Capabilities;

    /// One line of health for `/status`: how it receives, when it last received
    /// anything, any trouble it is backing off from. No secrets.
    fn status(&self) -> String {
        "connected".into()
    }

    /// Whether the channel receives now (see [`Ingress`]): what readiness, the
    /// watchdog and `/status` judge a deaf channel by. Every adapter reports
    /// real progress here; there is no default that would always say yes.
    fn ingress(&self) -> Ingress;

    /// Whether one process at a time may receive for this account: a long
    /// poller the platform allows once, a gateway connection. With replicas, the
    /// gateway starts such a channel only on the replica holding its lease, and
    /// stops it before that lease could pass to another. Default: no (webhooks,
    /// sockets the platform spreads over every connection).
    fn exclusive_ingress(&self) -> bool {
        false
    }

    /// Checks the credentials against the platform without starting, for
    /// `switchboard check`: one line per finding (who the bot is, a permission
    /// or setting it lacks). Default: nothing to check.
    async fn probe(&self) -> Vec<String> {
        Vec::new()
    }

    /// Connects and starts receiving; events go to `sink` until [`Channel::stop`].
    /// Fails (without retrying forever) when the platform refuses the credentials.
    async fn start(&self, sink: Arc<dyn InboundSink>) -> Result<(), ChannelError>;

    /// Stops receiving and lets go of the connection. Idempotent.
    async fn stop(&self);

    /// Sends one part (it fits the limit). Returns the sent message's reference.
    async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError>;

    /// Replaces a sent message's text with `part`. An edit to the identical text
    /// is a success. Default: [`ChannelError::Unsupported`].
    async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        let _ = (chat, sent, part);
        Err(ChannelError::Unsupported("edit"))
    }

    /// Shows the typing indicator once (it lasts [`Capabilities::typing_lasts`]).
    /// Default: nothing.
    async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        let _ = chat;
        Ok(())
    }

    /// Whether [`Channel::show_approval`] shows `text` whole and as written (no
    /// character read as markup, nothing cut). A prompt that would not be must
    /// be shown cut, with a marker ([`PromptRendering`]), and the gateway lets no
    /// chat allow it: it asks before it shows one. Default: the text fits one
    /// message as it is (buttons ride on it; without buttons, the default
    /// prompt is sent in parts).
    fn shows_whole(&self, text: &str) -> bool {
        let caps = self.capabilities();
        !caps.buttons || caps.length_unit.measure(text) <= caps.max_message_len
    }

    /// Shows an approval request with its buttons. Default, for channels without
    /// buttons: the question and the text commands that answer it.
    async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        let mut text = prompt.text.clone();
        for (label, command) in &prompt.commands {
            text.push_str(&format!("\n{label}: {command}"));
        }
        self.send(chat, &plain_blocks(&text), &SendOptions::default()).await
    }

    /// Replaces an approval prompt's buttons with how it ended (`outcome`, plain
    /// text). Default: edits the prompt's text, or sends the outcome as a new
    /// message when the channel cannot edit.
    async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        match self.edit(chat, sent, &plain_blocks(outcome)).await {
            Err(ChannelError::Unsupported(_)) => {
                self.send(chat, &plain_blocks(outcome), &SendOptions::default()).await.map(|_| ())
            }
            other => other,
        }
    }

    /// Ends an interaction the adapter acknowledged. `None` closes it silently
    /// (stops a spinner); `Some(notice)` shows the person who triggered it a short
    /// private notice (an alert, an ephemeral message). Default: nothing for `None`,
    /// the notice as a message in the chat otherwise.
    async fn close_interaction(
        &self,
        chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        let _ = interaction;
        match notice {
            None => Ok(()),
            Some(text) => self.send(chat, &plain_blocks(text), &SendOptions::default()).await.map(|_| ()),
        }
    }

    /// The direct chat between the bot and `user` (a channel-scoped sender id),
    /// opened if the platform needs that. Default: [`ChannelError::Unsupported`].
    async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        let _ = user;
        Err(ChannelError::Unsupported("direct chats"))
    }
}

/// What ends an approval prompt shown cut ([`Channel::shows_whole`] said no).
pub const PROMPT_CUT: &str = "\n[… cut here: too long to show whole in this chat, so it can only be denied here; \
     the operator sees it whole with `switchboard approvals show`]";

/// How an adapter shows an approval prompt's text: rendered (escaped so that
/// it shows as written) into at most `max` `unit`s. One owner of whether a
/// prompt fits ([`Channel::shows_whole`]) and of how it is cut when not.
pub struct PromptRendering {
    /// The most the platform shows in one message (or block), in `unit`s.
    pub max: usize,
    /// How `max` is counted.
    pub unit: LengthUnit,
    /// The text as sent, escaped so that it shows as written.
    pub render: fn(&str) -> String,
}

impl PromptRendering {
    /// Whether `text` is shown whole.
    pub fn fits(&self, text: &str) -> bool {
        self.unit.measure(&(self.render)(text)) <= self.max
    }

    /// The text to send: `text` rendered when it fits, else the rendering of its
    /// longest start that fits with [`PROMPT_CUT`] after it (never the text
    /// unrendered, where markup could hide part of it).
    pub fn to_fit(&self, text: &str) -> String {
        let whole = (self.render)(text);
        if self.unit.measure(&whole) <= self.max {
            return whole;
        }
        let room = self.max.saturating_sub(self.unit.measure(PROMPT_CUT));
        let ends: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
        // The most characters whose rendering fits (a rendering grows with its text).
        let (mut fits, mut too_many) = (0, ends.len());
        while too_many - fits > 1 {
            let middle = (fits + too_many) / 2;
            match self.unit.measure(&(self.render)(&text[..ends[middle]])) <= room {
                true => fits = middle,
                false => too_many = middle,
            }
        }
        format!("{}{PROMPT_CUT}", (self.render)(&text[..ends[fits]]))
    }
}

/// `text` as one block of plain text, exactly as written: nothing in it is read
/// as Markdown (a tool summary's `*` or `_` stays a character).
pub fn plain_blocks(text: &str) -> Vec<Block> {
    vec![Block::Text(vec![Span { text: text.to_string(), styles: Vec::new() }])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::to_plain;

    #[test]
    fn plain_blocks_keep_markdown_characters_literal() {
        let text = "Allow Bash: rm *.tmp && echo `x` [y](z)?\nsecond line";
        assert_eq!(to_plain(&plain_blocks(text)), text);
    }

    #[test]
    fn a_prompt_too_long_once_rendered_is_cut_rendered_with_a_marker() {
        let doubled = |t: &str| t.replace('*', "\\*");
        let prompt = PromptRendering { max: 400, unit: LengthUnit::Chars, render: doubled };
        assert_eq!(prompt.to_fit("a*b"), "a\\*b");
        assert!(prompt.fits("a*b"));
        let text = format!("ls {}; rm -rf ~", "*".repeat(300));
        assert!(!prompt.fits(&text));
        let shown = prompt.to_fit(&text);
        assert!(shown.ends_with(PROMPT_CUT), "{shown}");
        assert!(shown.chars().count() <= 400, "{}", shown.chars().count());
        let start = shown.strip_suffix(PROMPT_CUT).unwrap();
        assert!(start.starts_with("ls \\*\\*") && !start.contains("rm"), "{start}");
        // As long as fits: one more character would not.
        let kept = start.matches("\\*").count();
        assert!(doubled(&text[..3 + kept + 1]).chars().count() + PROMPT_CUT.chars().count() > 400);
    }

    #[test]
    fn a_prompt_is_cut_in_the_platforms_unit() {
        let text = format!("ls {}", "😀".repeat(300));
        let shown = PromptRendering { max: 400, unit: LengthUnit::Utf16, render: str::to_string }.to_fit(&text);
        assert!(LengthUnit::Utf16.measure(&shown) <= 400 && shown.ends_with(PROMPT_CUT), "{shown}");
    }

    #[test]
    fn lengths_are_counted_in_the_platform_unit() {
        assert_eq!(LengthUnit::Utf16.measure("😀a"), 3);
        assert_eq!(LengthUnit::Chars.measure("😀a"), 2);
    }
}
