//! Who said what, where: chat keys, the inbound events adapters produce, and the
//! references and prompts the gateway hands back to them.

use serde::{Deserialize, Serialize};

/// One place a conversation happens: a DM, a group, or a thread/topic in a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChatKey {
    /// The channel's name as registered (`telegram`, `discord`, `slack`).
    pub channel: String,
    /// The bot account (one daemon may run several bots of a channel).
    pub account: String,
    /// The platform's id of the chat (a DM, group or channel), as text.
    pub chat: String,
    /// A forum topic or thread inside the chat.
    pub thread: Option<String>,
}

impl ChatKey {
    /// The id policies and routes use: `telegram:123`, or `telegram:123/7` for a topic.
    pub fn id(&self) -> String {
        self.joined(self.thread.as_deref())
    }

    /// The whole chat, without its thread.
    pub fn chat_id(&self) -> String {
        self.joined(None)
    }

    /// Channel, chat and thread as one string (built piece by piece: a message
    /// asks for its chat's id a dozen times, and `format!` cost several times
    /// as much).
    fn joined(&self, thread: Option<&str>) -> String {
        let size = self.channel.len() + 1 + self.chat.len() + thread.map_or(0, |t| 1 + t.len());
        let mut id = String::with_capacity(size);
        id.push_str(&self.channel);
        id.push(':');
        id.push_str(&self.chat);
        if let Some(thread) = thread {
            id.push('/');
            id.push_str(thread);
        }
        id
    }
}

/// Whether a chat is one person's direct chat with the bot or a place several people share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    /// A private chat between one person and the bot.
    Direct,
    /// A group, server channel or any chat with more than one person.
    Group,
}

/// The person (or bot) behind an inbound event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// Channel-scoped and stable: `telegram:42`, `slack:U012AB3CD`. The identity.
    pub id: String,
    /// A display name: a label for people, never an identity.
    pub name: String,
    /// Whether the platform marks the sender as a bot.
    pub is_bot: bool,
}

/// A message from a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// Where it was said.
    pub chat: ChatKey,
    /// Direct or group.
    pub kind: ChatKind,
    /// Who said it.
    pub sender: Sender,
    /// The text, with any addressing of the bot that the platform adds removed.
    pub text: String,
    /// The bot was mentioned by name.
    pub mentions_bot: bool,
    /// The message replies to one of the bot's messages.
    pub reply_to_bot: bool,
    /// The platform's id of this message (replies point at it).
    pub message_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// The server or workspace the chat belongs to (a Discord guild), where the
    /// platform has one: `allowed_groups` and per-group policies may name it.
    #[serde(default)]
    pub space: Option<String>,
    /// The interaction the answer goes to, when the message came as one (a
    /// Discord `/ask`): the reply's first part answers it.
    #[serde(default)]
    pub interaction: Option<Interaction>,
}

/// A platform's handle for answering an interaction (a slash command or a button
/// press) after the adapter acknowledged it. Opaque to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interaction {
    /// Whatever the adapter needs to answer later (a callback query id, an
    /// interaction id and token, a response URL).
    pub handle: String,
}

/// A command invoked as a command: a platform's slash command, or a message the
/// adapter recognised as one of the registered commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Where it was invoked.
    pub chat: ChatKey,
    /// Direct or group.
    pub kind: ChatKind,
    /// Who invoked it.
    pub sender: Sender,
    /// The command's name as registered, without a leading `/`.
    pub name: String,
    /// Everything after the name, trimmed.
    pub args: String,
    /// Whether it was unambiguously addressed to this bot (always for slash
    /// commands; for a typed `/cmd` in a group only with the bot's name attached).
    pub addressed: bool,
    /// The message that carried it, when it came as a message (replies point at it).
    pub message_id: Option<String>,
    /// The interaction to answer, when it came as one.
    pub interaction: Option<Interaction>,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// The server or workspace the chat belongs to (see [`Inbound::space`]).
    #[serde(default)]
    pub space: Option<String>,
}

/// A button press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    /// The chat holding the button.
    pub chat: ChatKey,
    /// Who pressed it.
    pub sender: Sender,
    /// What the button carries: an opaque id the gateway resolves. Untrusted.
    pub data: String,
    /// The message holding the button.
    pub message_id: String,
    /// The platform's handle for answering the press.
    pub interaction: Interaction,
}

/// What an inbound event is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    /// Text from a person.
    Message(Inbound),
    /// A command delivered as such.
    Command(Command),
    /// A button press.
    Click(Click),
}

impl InboundKind {
    /// The chat the event happened in.
    pub fn chat(&self) -> &ChatKey {
        match self {
            InboundKind::Message(m) => &m.chat,
            InboundKind::Command(c) => &c.chat,
            InboundKind::Click(c) => &c.chat,
        }
    }

    /// Who caused it.
    pub fn sender(&self) -> &Sender {
        match self {
            InboundKind::Message(m) => &m.sender,
            InboundKind::Command(c) => &c.sender,
            InboundKind::Click(c) => &c.sender,
        }
    }
}

/// An inbound event with the platform's unique id, which the journal deduplicates on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Unique per platform event and stable across redeliveries: `telegram:999:1234`.
    pub event_id: String,
    /// The event itself.
    pub kind: InboundKind,
}

/// A reference to a message the bot sent, for later edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    /// The platform's id of the message.
    pub message_id: String,
}

/// Who sees a message the bot sends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone in the chat.
    #[default]
    Public,
    /// Only this person (a channel-scoped sender id), where the platform has
    /// ephemeral messages; a public message where it does not.
    Private {
        /// The channel-scoped id of the one reader.
        user: String,
    },
}

/// How one message is sent, besides its text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SendOptions {
    /// The platform message this one replies to.
    pub reply_to: Option<String>,
    /// The interaction this message answers (a slash command's response), where
    /// the platform answers interactions with messages. Every part of a long
    /// answer carries it: the first is the response, later ones continue it.
    pub interaction: Option<Interaction>,
    /// Which part of its reply this is: 0 for the first.
    #[serde(default)]
    pub part: usize,
    /// Who sees it.
    pub visibility: Visibility,
    /// The same for every attempt to send this one part, across restarts: where
    /// the platform deduplicates sends by a key (Discord's `nonce` with
    /// `enforce_nonce`), an attempt after a crash cannot post the part twice.
    pub idempotency_key: Option<String>,
}

/// An approval request as a channel shows it: a question and its buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPrompt {
    /// The question, plain text.
    pub text: String,
    /// (label, button data) in display order. The data comes back in a [`Click`].
    pub buttons: Vec<(String, String)>,
    /// The text commands that decide it, for channels without buttons: `(label, command)`.
    pub commands: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::ChatKey;

    #[test]
    fn a_chat_id_names_the_channel_the_chat_and_its_thread() {
        let mut key =
            ChatKey { channel: "telegram".into(), account: "42".into(), chat: "-100123".into(), thread: None };
        assert_eq!(key.id(), "telegram:-100123");
        assert_eq!(key.chat_id(), "telegram:-100123");
        key.thread = Some("7".into());
        assert_eq!(key.id(), "telegram:-100123/7");
        assert_eq!(key.chat_id(), "telegram:-100123", "the whole chat, without its thread");
    }
}
