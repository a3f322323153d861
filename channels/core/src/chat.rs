//! Who said what, where: chat keys, inbound events and outbound messages.

use serde::{Deserialize, Serialize};

/// One place a conversation happens: a DM, a group, or a thread/topic in a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChatKey {
    /// `telegram`, `discord`, `slack`.
    pub channel: String,
    /// The bot account (one daemon may run several bots of a channel).
    pub account: String,
    pub chat: String,
    /// A forum topic or thread inside the chat.
    pub thread: Option<String>,
}

impl ChatKey {
    /// The id policies and routes use: `telegram:123`, or `telegram:123/7` for a topic.
    pub fn id(&self) -> String {
        match &self.thread {
            Some(t) => format!("{}:{}/{t}", self.channel, self.chat),
            None => format!("{}:{}", self.channel, self.chat),
        }
    }

    /// The whole chat, without its thread.
    pub fn chat_id(&self) -> String {
        format!("{}:{}", self.channel, self.chat)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Channel-scoped, e.g. `telegram:42`.
    pub id: String,
    pub name: String,
    pub is_bot: bool,
}

/// A message from a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub chat: ChatKey,
    pub kind: ChatKind,
    pub sender: Sender,
    pub text: String,
    pub mentions_bot: bool,
    pub reply_to_bot: bool,
    /// The platform's id of this message (replies point at it).
    pub message_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
}

/// A button press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub chat: ChatKey,
    pub sender: Sender,
    /// What the button carries: an opaque id the gateway resolves.
    pub data: String,
    /// The message holding the button.
    pub message_id: String,
    /// The platform's handle for answering the click.
    pub callback_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    Message(Inbound),
    Click(Click),
}

/// An inbound event with the platform's unique id, which the journal deduplicates on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// e.g. `telegram:update:1234`.
    pub event_id: String,
    pub kind: InboundKind,
}

/// A reply on its way to a chat, as the agent wrote it (Markdown). The gateway splits
/// it into parts that fit the channel and sends them in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub text: String,
    /// The platform message the first part replies to (in groups).
    pub reply_to: Option<String>,
}

/// A reference to a message the bot sent, for later edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    pub message_id: String,
}

/// An approval request as a channel shows it: a question and three buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPrompt {
    pub text: String,
    /// (label, button data) in display order.
    pub buttons: Vec<(String, String)>,
}
