//! The fake Slack's world: users, channels, messages (with every version the
//! app gave them), pending Socket Mode envelopes and their acknowledgements,
//! and what the app called.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The bot user's id.
pub const BOT_USER: &str = "U0SWITCHBD";
/// The bot's id (on its messages' `bot_id`).
pub const BOT_ID: &str = "B0SWITCHBD";
pub const TEAM: &str = "T0TEAM";
pub const APP_ID: &str = "A0SWITCHBD";
/// The tokens the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-0000-1111-fakebottokensecret";
pub const APP_TOKEN: &str = "xapp-1-A0SWITCHBD-2222-fakeapptokensecret";
/// An envelope not acknowledged within this long is delivered again.
pub const ACK_DEADLINE: Duration = Duration::from_secs(3);

/// One Web API call (or response URL post), whatever its outcome.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
}

/// A message as the fake keeps it.
#[derive(Clone, Debug)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    /// The person, or `None` for the bot.
    pub user: Option<String>,
    pub text: String,
    pub blocks: Value,
    /// Only this person sees it.
    pub ephemeral_for: Option<String>,
    /// Every text the app gave it, first to last.
    pub versions: Vec<String>,
    /// When the app updated it (for the per-message update limit).
    pub updated: Vec<Instant>,
    /// `assistant_app_thread` for an assistant thread's first message.
    pub subtype: Option<String>,
}

impl SlackMessage {
    pub fn json(&self) -> Value {
        let mut m = json!({"type": "message", "ts": self.ts, "text": self.text});
        match &self.user {
            Some(user) => m["user"] = json!(user),
            None => {
                m["bot_id"] = json!(BOT_ID);
                m["user"] = json!(BOT_USER);
                // Slack leaves `blocks` out of a text-only message.
                if !self.blocks.is_null() {
                    m["blocks"] = self.blocks.clone();
                }
            }
        }
        if let Some(subtype) = &self.subtype {
            m["subtype"] = json!(subtype);
        }
        if let Some(thread) = &self.thread_ts {
            m["thread_ts"] = json!(thread);
        }
        m
    }
}

/// An envelope for the app, and how its delivery went.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub attempts: u64,
    pub sent_at: Option<Instant>,
    pub created: Instant,
    /// How long after it was first sent the app acknowledged it.
    pub acked_after: Option<Duration>,
    /// The connection (its number, from 1) it was last sent on.
    pub connection: Option<u64>,
    /// The connection it must go to (pinned when it was made), while open.
    pub target: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub method: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct State {
    last_ts: f64,
    counter: u64,
    pub users: HashMap<String, String>,
    /// Direct channels by person.
    pub dms: HashMap<String, String>,
    /// Other channels the app is in.
    pub channels: std::collections::HashSet<String>,
    pub messages: BTreeMap<String, SlackMessage>,
    pub envelopes: Vec<Envelope>,
    pub calls: Vec<Call>,
    pub failures: Vec<Failure>,
    /// `assistant.threads.*` calls, in order: (method, body).
    pub assistant: Vec<(String, Value)>,
    pub connections: u64,
    /// The connections open now, by number.
    pub live: Vec<u64>,
    /// Envelopes go to every open connection in turn (an app running several
    /// processes), not only to the newest.
    pub spread: bool,
    /// The next connection in turn, when spreading.
    pub next_turn: usize,
    /// When spreading: every envelope goes to this connection while it is open.
    pub pinned: Option<u64>,
    /// Ask the current connection to reconnect with this reason.
    pub disconnect: Option<String>,
    /// Drop the current connection without a word.
    pub drop_connection: bool,
    pub socket_url: String,
    /// What `auth.test` lists in `x-oauth-scopes`.
    pub scopes: String,
    pub base_url: String,
}

impl State {
    /// A message timestamp, unique and growing: `1712345678.000123`.
    pub fn next_ts(&mut self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.last_ts = (self.last_ts + 0.000_001).max((now * 1e6).floor() / 1e6);
        format!("{:.6}", self.last_ts)
    }

    pub fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{:08}", self.counter)
    }

    /// Channels the app can post in: every DM, and every channel someone wrote in
    /// or the test added.
    pub fn knows_channel(&self, channel: &str) -> bool {
        self.channels.contains(channel) || self.dms.values().any(|c| c == channel)
    }

    pub fn dm(&mut self, user: &str) -> String {
        if let Some(channel) = self.dms.get(user) {
            return channel.clone();
        }
        let channel = self.next_id("D");
        self.dms.insert(user.to_string(), channel.clone());
        channel
    }

    /// Queues an envelope for the app.
    pub fn envelope(&mut self, kind: &str, payload: Value) -> String {
        let id = format!("env-{}", self.next_id(""));
        let now = Instant::now();
        self.envelopes.push(Envelope {
            id: id.clone(),
            kind: kind.into(),
            payload,
            attempts: 0,
            sent_at: None,
            created: now,
            acked_after: None,
            connection: None,
            target: self.pinned.filter(|_| self.spread),
        });
        id
    }

    /// An Events API envelope around `event`.
    pub fn event(&mut self, event: Value) -> String {
        let event_id = self.next_id("Ev");
        let payload = json!({
            "token": "verification-token", "team_id": TEAM, "api_app_id": APP_ID, "type": "event_callback",
            "event_id": event_id, "event_time": 1_700_000_000, "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": true}],
        });
        self.envelope("events_api", payload)
    }

    pub fn take_failure(&mut self, method: &str) -> Option<Failure> {
        let index = self.failures.iter().position(|f| f.method == method)?;
        Some(self.failures.remove(index))
    }
}

/// The fake's state behind its lock.
pub type Shared = crate::shared::Shared<State>;
