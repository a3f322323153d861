//! The parts of Discord's JSON the adapter reads: gateway frames and the
//! dispatch payloads it acts on. Unknown fields are ignored and missing optional
//! ones default, so a payload Discord extends still parses.

use serde::Deserialize;
use serde_json::Value;

/// Discord's epoch (2015-01-01) in milliseconds since the Unix epoch.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Milliseconds since the Unix epoch at which a snowflake id was made.
pub fn snowflake_ms(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().map(|n| (n >> 22) + DISCORD_EPOCH_MS)
}

/// The smallest snowflake made at `ms` (for "messages after this time").
pub fn snowflake_at(ms: u64) -> u64 {
    ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

/// Gateway opcodes the adapter sends or handles.
pub mod op {
    pub const DISPATCH: u64 = 0;
    pub const HEARTBEAT: u64 = 1;
    pub const IDENTIFY: u64 = 2;
    pub const RESUME: u64 = 6;
    pub const RECONNECT: u64 = 7;
    pub const INVALID_SESSION: u64 = 9;
    pub const HELLO: u64 = 10;
    pub const HEARTBEAT_ACK: u64 = 11;
}

/// One gateway frame.
#[derive(Debug, Deserialize)]
pub struct Frame {
    pub op: u64,
    #[serde(default)]
    pub d: Value,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(default)]
    pub t: Option<String>,
}

/// A user as Discord describes one.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub global_name: Option<String>,
    #[serde(default)]
    pub bot: bool,
    #[serde(default)]
    pub system: bool,
}

impl User {
    /// The name people see: the display name, else the username.
    pub fn shown_name(&self) -> String {
        self.global_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| self.username.clone())
    }
}

/// A guild member (carries the user in interactions).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Member {
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub nick: Option<String>,
}

/// A message (MESSAGE_CREATE, or one fetched over REST).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub id: String,
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    pub author: User,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub content: String,
    /// 0: default, 19: reply; everything else is a system message.
    #[serde(default, rename = "type")]
    pub kind: u64,
    #[serde(default)]
    pub mentions: Vec<User>,
    #[serde(default)]
    pub referenced_message: Option<Box<Message>>,
    #[serde(default)]
    pub webhook_id: Option<String>,
}

/// An option of an application command as invoked.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandOption {
    #[serde(default)]
    pub value: Option<Value>,
}

/// `data` of an interaction.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct InteractionData {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub options: Vec<CommandOption>,
    #[serde(default)]
    pub custom_id: Option<String>,
}

/// The message a component interaction was on.
#[derive(Debug, Clone, Deserialize)]
pub struct InteractionMessage {
    pub id: String,
}

/// INTERACTION_CREATE.
#[derive(Debug, Clone, Deserialize)]
pub struct Interaction {
    pub id: String,
    pub token: String,
    #[serde(rename = "type")]
    pub kind: u64,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub data: Option<InteractionData>,
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub message: Option<InteractionMessage>,
    /// Where it happened (see [`context`]); absent from older payloads.
    #[serde(default)]
    pub context: Option<u64>,
}

impl Interaction {
    /// Who triggered it: the member's user in a guild, the user in a DM.
    pub fn invoker(&self) -> Option<&User> {
        self.member.as_ref().and_then(|m| m.user.as_ref()).or(self.user.as_ref())
    }
}

/// Interaction types.
pub mod interaction_type {
    pub const APPLICATION_COMMAND: u64 = 2;
    pub const MESSAGE_COMPONENT: u64 = 3;
}

/// Where an interaction happened (`context`).
pub mod context {
    /// A guild the app is installed in.
    pub const GUILD: u64 = 0;
    /// The bot's own DM with the person.
    pub const BOT_DM: u64 = 1;
    /// A group DM or a DM between other people (user-installed commands).
    pub const PRIVATE_CHANNEL: u64 = 2;
}

/// Interaction callback (response) types.
pub mod callback {
    /// A message answers at once.
    pub const MESSAGE: u64 = 4;
    /// "Thinking…" now; the answer edits the response later.
    pub const DEFERRED_MESSAGE: u64 = 5;
    /// A press acknowledged; the message it was on is edited later (or not).
    pub const DEFERRED_UPDATE: u64 = 6;
}

/// Message types a person writes; every other type is the system's.
pub mod message_type {
    pub const DEFAULT: u64 = 0;
    pub const REPLY: u64 = 19;
}

/// Component types.
pub mod component {
    pub const ACTION_ROW: u64 = 1;
    pub const BUTTON: u64 = 2;
}

/// A channel (in GUILD_CREATE, THREAD_CREATE, CHANNEL_CREATE, or fetched).
#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: u64,
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
}

impl Channel {
    /// Announcement, public and private threads.
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }

    /// Channels whose messages the bot reads: text, DM, announcement, threads,
    /// voice text chat.
    pub fn holds_messages(&self) -> bool {
        matches!(self.kind, 0 | 1 | 2 | 5 | 10..=12)
    }
}

/// GUILD_CREATE, as far as the adapter reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Guild {
    pub id: String,
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub threads: Vec<Channel>,
}

/// THREAD_LIST_SYNC.
#[derive(Debug, Clone, Deserialize)]
pub struct ThreadList {
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub threads: Vec<Channel>,
}

/// READY.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub session_id: String,
    #[serde(default)]
    pub resume_gateway_url: Option<String>,
}

/// GET /gateway/bot.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayBot {
    pub url: String,
    #[serde(default)]
    pub session_start_limit: Option<SessionStartLimit>,
}

/// How many fresh sessions (IDENTIFYs) the bot has left, and when that resets.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionStartLimit {
    pub remaining: u64,
    /// Milliseconds until `remaining` is full again.
    pub reset_after: u64,
}

impl GatewayBot {
    /// How long to wait before identifying: none while sessions remain, else
    /// until the limit resets (Discord resets a bot's token that goes over it).
    pub fn identify_wait(&self) -> std::time::Duration {
        match &self.session_start_limit {
            Some(limit) if limit.remaining == 0 => std::time::Duration::from_millis(limit.reset_after),
            _ => std::time::Duration::ZERO,
        }
    }
}

/// GET /applications/@me.
#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub id: String,
    #[serde(default)]
    pub flags: u64,
}

impl Application {
    /// Whether the Message Content intent is enabled for the bot (the verified
    /// `GATEWAY_MESSAGE_CONTENT` or the unverified `..._LIMITED` flag).
    pub fn reads_message_content(&self) -> bool {
        self.flags & ((1 << 18) | (1 << 19)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sessions_left_means_waiting_for_the_reset() {
        let left = |remaining: u64| -> GatewayBot {
            serde_json::from_value(serde_json::json!({"url": "wss://g", "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": remaining, "reset_after": 5000, "max_concurrency": 1}}))
            .unwrap()
        };
        assert_eq!(left(3).identify_wait(), std::time::Duration::ZERO);
        assert_eq!(left(0).identify_wait(), std::time::Duration::from_secs(5));
        let unknown: GatewayBot = serde_json::from_value(serde_json::json!({"url": "wss://g"})).unwrap();
        assert_eq!(unknown.identify_wait(), std::time::Duration::ZERO);
    }

    #[test]
    fn snowflakes_carry_their_time() {
        // Discord's documented example: 175928847299117063 is 2016-04-30 11:18:25.796 UTC.
        assert_eq!(snowflake_ms("175928847299117063"), Some(1_462_015_105_796));
        let at = snowflake_at(1_462_015_105_796);
        assert_eq!(snowflake_ms(&at.to_string()), Some(1_462_015_105_796));
        assert_eq!(snowflake_ms("x"), None);
    }

    #[test]
    fn messages_parse_with_unknown_and_missing_fields() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "id": "1", "channel_id": "2", "author": {"id": "3", "username": "ann", "avatar": null},
            "content": "hi", "type": 0, "tts": false, "embeds": [], "new_field": {"x": 1}
        }))
        .unwrap();
        assert_eq!((m.id.as_str(), m.author.shown_name().as_str(), m.guild_id), ("1", "ann", None));
    }
}
