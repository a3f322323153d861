//! The fake Discord's world: users, guilds, channels and threads, every message
//! in them, interactions and their responses, the gateway session's event log,
//! and what the bot called.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Discord's epoch in milliseconds since the Unix epoch.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// The bot's user id.
pub const BOT_ID: &str = "900000000000000001";
/// The bot's application id.
pub const APP_ID: &str = "900000000000000002";
pub const BOT_NAME: &str = "switchboard-test";

/// Channel types.
pub const GUILD_TEXT: u64 = 0;
/// The Message Content intent.
pub const MESSAGE_CONTENT: u64 = 1 << 15;
pub const DM: u64 = 1;
pub const PUBLIC_THREAD: u64 = 11;

/// One request to the fake, whatever its outcome.
#[derive(Clone, Debug)]
pub struct Call {
    /// `POST /channels/{id}/messages` with the ids as they were.
    pub method: String,
    pub path: String,
    pub body: Value,
    pub at: Instant,
}

/// A channel, DM or thread.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub id: String,
    pub kind: u64,
    pub guild: Option<String>,
    pub parent: Option<String>,
    /// For DMs: the other person.
    pub recipient: Option<String>,
}

/// A message as the fake keeps it.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub json: Value,
    /// Every content the bot gave it, first to last (the first is the create).
    pub versions: Vec<String>,
    /// Only the interaction's user sees it; never listed in channel history.
    pub ephemeral: bool,
    /// The `allowed_mentions` of the create and each edit.
    pub allowed_mentions: Vec<Option<Value>>,
}

impl StoredMessage {
    pub fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or_default()
    }
    pub fn channel(&self) -> &str {
        self.json["channel_id"].as_str().unwrap_or_default()
    }
    pub fn author(&self) -> &str {
        self.json["author"]["id"].as_str().unwrap_or_default()
    }
    pub fn content(&self) -> &str {
        self.json["content"].as_str().unwrap_or_default()
    }
}

/// An interaction the fake created.
#[derive(Clone, Debug)]
pub struct InteractionInfo {
    pub id: String,
    pub token: String,
    pub kind: u64,
    pub channel: String,
    pub user: String,
    pub created: Instant,
    /// The callback type it was answered with (4, 5, 6, 7), once.
    pub response: Option<u64>,
    /// The message the original response created (types 4 and 5).
    pub original: Option<String>,
    /// The message a component sat on.
    pub message: Option<String>,
    /// Follow-up message ids.
    pub followups: Vec<String>,
}

/// One dispatch in the session's log.
#[derive(Clone, Debug)]
pub struct Dispatched {
    pub seq: u64,
    pub name: String,
    pub data: Value,
}

/// The gateway session (one shard).
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub id: String,
    pub log: Vec<Dispatched>,
    pub intents: u64,
}

/// A failure queued for the next request matching a route key.
#[derive(Clone, Debug)]
pub struct Failure {
    /// `POST /channels/*/messages`: method and path with every id replaced by `*`.
    pub route: String,
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<f64>,
}

#[derive(Default)]
pub struct State {
    pub last_id: u64,
    counter: u64,
    pub users: HashMap<String, Value>,
    pub channels: BTreeMap<String, ChannelInfo>,
    pub guilds: BTreeMap<String, Vec<String>>,
    /// Every message, by id.
    pub messages: BTreeMap<String, StoredMessage>,
    pub interactions: HashMap<String, InteractionInfo>,
    /// `(channel, nonce)` of creates with `enforce_nonce` -> the message made.
    pub nonces: HashMap<(String, String), (String, Instant)>,
    pub commands: BTreeMap<String, Value>,
    pub typing: Vec<(String, Instant)>,
    pub calls: Vec<Call>,
    pub failures: Vec<Failure>,
    /// `(route, delay)`: the next request to the route is answered this much later.
    pub delays: Vec<(String, std::time::Duration)>,
    pub session: Option<Session>,
    /// Connections accepted so far, and how many identified fresh / resumed.
    pub connections: u64,
    pub identifies: u64,
    pub resumes: u64,
    /// This connection (by number) gets no acknowledgements and no events: a
    /// silent, dead-looking socket.
    pub silent: Option<u64>,
    /// Close the current connection with this code at the next chance.
    pub close_with: Option<u16>,
    /// The heartbeat interval sent in HELLO.
    pub heartbeat_ms: u64,
    /// `ws://127.0.0.1:PORT`, what GET /gateway/bot answers.
    pub gateway_url: String,
}

impl State {
    /// A snowflake for now, unique in this fake.
    pub fn next_id(&mut self) -> String {
        self.id_at(now_ms())
    }

    /// A snowflake made at `ms`, unique in this fake; ids made for now only grow.
    pub fn id_at(&mut self, ms: u64) -> String {
        self.counter += 1;
        let id = (ms.saturating_sub(DISCORD_EPOCH_MS) << 22) | (self.counter & 0x3f_ffff);
        let id = if ms + 1000 >= now_ms() { id.max(self.last_id + 1) } else { id };
        self.last_id = self.last_id.max(id);
        id.to_string()
    }

    pub fn user_json(&mut self, id: &str) -> Value {
        self.users
            .entry(id.to_string())
            .or_insert_with(|| json!({"id": id, "username": format!("user{id}"), "global_name": format!("User {id}"), "bot": false, "avatar": null, "discriminator": "0"}))
            .clone()
    }

    pub fn bot_json() -> Value {
        json!({"id": BOT_ID, "username": BOT_NAME, "global_name": null, "bot": true, "avatar": null, "discriminator": "0"})
    }

    pub fn channel_json(&self, id: &str) -> Option<Value> {
        let c = self.channels.get(id)?;
        let last = self.messages.values().rev().find(|m| m.channel() == id && !m.ephemeral).map(|m| m.id().to_string());
        let mut out = json!({"id": c.id, "type": c.kind, "last_message_id": last, "flags": 0});
        if let Some(g) = &c.guild {
            let position = self.guilds.get(g).and_then(|ids| ids.iter().position(|i| i == id)).unwrap_or(0);
            out["guild_id"] = json!(g);
            out["name"] = json!(format!("channel-{}", c.id));
            out["position"] = json!(position);
            out["permission_overwrites"] = json!([]);
            out["nsfw"] = json!(false);
            out["topic"] = Value::Null;
            out["rate_limit_per_user"] = json!(0);
            out["parent_id"] = json!(c.parent);
        }
        if c.kind == PUBLIC_THREAD {
            out["owner_id"] = json!(BOT_ID);
            out["message_count"] = json!(0);
            out["member_count"] = json!(1);
            out["total_message_sent"] = json!(0);
            out["thread_metadata"] = json!({
                "archived": false, "auto_archive_duration": 1440, "locked": false,
                "archive_timestamp": "2025-01-01T00:00:00.000000+00:00",
            });
        }
        if let Some(r) = &c.recipient {
            let user = self.users.get(r).cloned().unwrap_or(json!({"id": r}));
            out["recipients"] = json!([user]);
        }
        Some(out)
    }

    pub fn guild_json(&self, guild: &str) -> Value {
        let ids = self.guilds.get(guild).cloned().unwrap_or_default();
        let (threads, channels): (Vec<&String>, Vec<&String>) =
            ids.iter().partition(|id| self.channels.get(*id).is_some_and(|c| c.kind == PUBLIC_THREAD));
        // Discord includes the @everyone role (its id is the guild's) and the bot's own member.
        let everyone = json!({"id": guild, "name": "@everyone", "permissions": "1071698660929", "position": 0,
            "color": 0, "hoist": false, "managed": false, "mentionable": false, "flags": 0});
        let me = json!({"user": State::bot_json(), "roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0});
        json!({
            "id": guild, "name": format!("guild-{guild}"), "unavailable": false, "member_count": 3,
            "owner_id": "100000000000000001", "joined_at": "2025-01-01T00:00:00.000000+00:00",
            "channels": channels.iter().filter_map(|id| self.channel_json(id)).collect::<Vec<_>>(),
            "threads": threads.iter().filter_map(|id| self.channel_json(id)).collect::<Vec<_>>(),
            "roles": [everyone], "emojis": [], "stickers": [], "members": [me], "large": false,
            "features": [], "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "premium_tier": 0, "nsfw_level": 0,
            "preferred_locale": "en-US", "afk_timeout": 300, "system_channel_flags": 0,
        })
    }

    /// Appends to the session's log (if a session exists) and wakes the connection.
    pub fn dispatch(&mut self, name: &str, mut data: Value) {
        if let Some(session) = self.session.as_mut() {
            // Without the Message Content intent a guild message that does not
            // mention the bot (nor is the bot's own) arrives without its text.
            let guild_message = matches!(name, "MESSAGE_CREATE" | "MESSAGE_UPDATE") && data.get("guild_id").is_some();
            let mentions_bot = data["mentions"].as_array().is_some_and(|m| m.iter().any(|u| u["id"] == BOT_ID));
            if guild_message
                && session.intents & MESSAGE_CONTENT == 0
                && !mentions_bot
                && data["author"]["id"] != BOT_ID
            {
                data["content"] = json!("");
            }
            let seq = session.log.last().map_or(1, |d| d.seq + 1);
            session.log.push(Dispatched { seq, name: name.to_string(), data });
        }
    }

    /// The failure queued for `route`, if any.
    pub fn take_failure(&mut self, route: &str) -> Option<Failure> {
        let index = self.failures.iter().position(|f| f.route == route)?;
        Some(self.failures.remove(index))
    }
}

/// The fake's state behind its lock.
pub type Shared = crate::shared::Shared<State>;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// ISO 8601 for a snowflake's time (message `timestamp`).
pub fn iso_of(id: &str) -> String {
    let ms = id.parse::<u64>().map(|n| (n >> 22) + DISCORD_EPOCH_MS).unwrap_or(0);
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000+00:00", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Days since 1970-01-01 as a calendar date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe as i64 + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
