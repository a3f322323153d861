//! Fake Slack: the Web API and Socket Mode on 127.0.0.1, with helpers to inject
//! mentions, DMs, thread replies, assistant threads, slash commands and button
//! presses, to fail calls (429 with `Retry-After`), to drop or refresh the
//! socket, and to inspect what the app sent and how fast it acknowledged.
//! In HTTP mode the same injected payloads are POSTed, signed, to the app.
//!
//! The app reaches it with the Web API base `api_url()` (`…/api/`) and the
//! tokens [`BOT_TOKEN`] and [`APP_TOKEN`].

mod api;
mod socket;
mod state;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use state::{Call, Envelope, SlackMessage, ACK_DEADLINE, APP_TOKEN, BOT_TOKEN, BOT_USER, TEAM};

use state::{Failure, Shared};

/// The scopes of the app manifest, which the fake's bot token has unless a test
/// says otherwise.
pub const SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "im:write",
    "im:read",
    "users:read",
    "commands",
    "assistant:write",
];

/// Handle to a running fake. Clones share it; it stops with the last one.
#[derive(Clone)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    api: std::net::SocketAddr,
    _server: Arc<crate::server::ServerTask>,
    _socket: Arc<crate::server::ServerTask>,
}

impl FakeSlack {
    /// Starts the Web API and the Socket Mode server on 127.0.0.1.
    pub async fn start() -> FakeSlack {
        let shared = Arc::new(Shared::default());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("fake slack: bind the socket server");
        let socket_addr = listener.local_addr().expect("fake slack: socket address");
        let socket = crate::server::ServerTask::spawn(socket::serve(listener, shared.clone()));
        let (api, server) = crate::server::start("fake slack", api::router(shared.clone())).await;
        {
            let mut state = shared.lock();
            state.socket_url = format!("ws://{socket_addr}/link/");
            state.base_url = format!("http://{api}");
            state.scopes = SCOPES.join(",");
        }
        FakeSlack { shared, api, _server: server, _socket: Arc::new(socket) }
    }

    /// `http://127.0.0.1:PORT/api/`: the Web API base.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.api)
    }

    // ---- people; each returns the new message's ts ----

    /// The scopes the bot token has (what `auth.test` lists).
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.shared.lock().scopes = scopes.join(",");
    }

    /// A channel the app is a member of (it may post there).
    pub fn add_channel(&self, channel: &str) {
        self.shared.lock().channels.insert(channel.to_string());
    }

    /// The direct channel between the bot and `user` (made if needed).
    pub fn dm_channel(&self, user: &str) -> String {
        self.shared.change(|s| s.dm(user))
    }

    /// Names a person (what `users.info` answers).
    pub fn name_user(&self, user: &str, name: &str) {
        self.shared.lock().users.insert(user.into(), name.into());
    }

    /// `user` writes to the bot directly (in `thread`, when given).
    pub fn dm(&self, user: &str, thread: Option<&str>, text: &str) -> String {
        let channel = self.dm_channel(user);
        self.post(&channel, "im", user, thread, text, None)
    }

    /// `user` mentions the bot in `channel`: an `app_mention` and a `message` event.
    pub fn mention(&self, channel: &str, user: &str, text: &str) -> String {
        let text = format!("<@{BOT_USER}> {text}");
        self.post(channel, "channel", user, None, &text, Some("app_mention"))
    }

    /// `user` writes in `channel` (in `thread`, when given) without a mention.
    pub fn say(&self, channel: &str, user: &str, thread: Option<&str>, text: &str) -> String {
        self.post(channel, "channel", user, thread, text, None)
    }

    fn post(
        &self,
        channel: &str,
        kind: &str,
        user: &str,
        thread: Option<&str>,
        text: &str,
        also: Option<&str>,
    ) -> String {
        self.shared.change(|s| {
            let ts = s.next_ts();
            if !channel.starts_with('D') {
                s.channels.insert(channel.to_string());
            }
            s.users.entry(user.to_string()).or_insert_with(|| format!("User {user}"));
            let stored = SlackMessage {
                channel: channel.into(),
                ts: ts.clone(),
                thread_ts: thread.map(str::to_string),
                user: Some(user.into()),
                text: text.into(),
                blocks: Value::Null,
                ephemeral_for: None,
                versions: vec![text.into()],
                updated: Vec::new(),
                subtype: None,
            };
            s.messages.insert(ts.clone(), stored);
            // A direct channel's messages are `im`, whatever the caller said.
            let kind = if channel.starts_with('D') { "im" } else { kind };
            let mut event = json!({"type": "message", "channel": channel, "channel_type": kind, "user": user,
                "text": text, "ts": ts, "event_ts": ts, "team": TEAM, "client_msg_id": format!("c-{ts}")});
            if let Some(thread) = thread {
                event["thread_ts"] = json!(thread);
                // The author of the thread's first message.
                let root = s.messages.get(thread).map(|m| m.user.clone().unwrap_or_else(|| BOT_USER.to_string()));
                event["parent_user_id"] = json!(root.unwrap_or_else(|| user.to_string()));
            }
            if let Some(also) = also {
                let mut mention = event.clone();
                mention["type"] = json!(also);
                mention.as_object_mut().map(|m| m.remove("channel_type"));
                s.event(mention);
            }
            s.event(event);
            ts
        })
    }

    /// `user` opens the assistant pane: `assistant_thread_started`; returns the thread's ts.
    pub fn open_assistant(&self, user: &str) -> String {
        self.shared.change(|s| {
            let channel = s.dm(user);
            let thread = s.next_ts();
            let root = SlackMessage {
                channel: channel.clone(),
                ts: thread.clone(),
                thread_ts: None,
                user: None,
                text: "Hi, how can I help?".into(),
                blocks: Value::Null,
                ephemeral_for: None,
                versions: vec![],
                updated: Vec::new(),
                subtype: Some("assistant_app_thread".into()),
            };
            s.messages.insert(thread.clone(), root);
            s.event(json!({"type": "assistant_thread_started", "event_ts": thread,
                "assistant_thread": {"user_id": user, "context": {}, "channel_id": channel, "thread_ts": thread}}));
            thread
        })
    }

    /// `user` runs the slash command with `text` in `channel`; returns its envelope id.
    pub fn slash(&self, channel: &str, user: &str, command: &str, text: &str) -> String {
        self.shared.change(|s| {
            let id = s.next_id("R");
            let base = s.base_url.clone();
            let payload = json!({"token": "verification-token", "team_id": TEAM, "team_domain": "fake", "channel_id": channel,
                "channel_name": "general", "user_id": user, "user_name": format!("user-{user}"), "command": command, "text": text,
                "api_app_id": "A0SWITCHBD", "response_url": format!("{base}/response/{id}"), "trigger_id": format!("trig-{id}")});
            s.envelope("slash_commands", payload)
        })
    }

    /// `user` presses a button whose value is `value` on the bot's message `ts`.
    pub fn click(&self, channel: &str, user: &str, ts: &str, value: &str) -> String {
        self.shared.change(|s| {
            let message = s.messages.get(ts).cloned().unwrap_or_else(|| panic!("fake slack: no message {ts}"));
            let id = s.next_id("R");
            let base = s.base_url.clone();
            let mut message_json = message.json();
            message_json["type"] = json!("message");
            let payload = json!({"type": "block_actions", "user": {"id": user, "username": format!("user-{user}"), "team_id": TEAM},
                "api_app_id": "A0SWITCHBD", "token": "verification-token", "container": {"type": "message", "message_ts": ts, "channel_id": channel},
                "trigger_id": format!("trig-{id}"), "team": {"id": TEAM}, "channel": {"id": channel, "name": "general"},
                "message": message_json, "response_url": format!("{base}/response/{id}"),
                "actions": [pressed(&message.blocks, value, s.next_ts())], "state": {"values": {}}, "is_enterprise_install": false, "enterprise": null});
            s.envelope("interactive", payload)
        })
    }

    /// Slack delivers the newest event again, as it does when it missed the
    /// acknowledgement: the same payload in a new envelope, `retry_attempt` 1.
    pub fn redeliver_last_event(&self) -> String {
        self.shared.change(|s| {
            let last = s
                .envelopes
                .iter()
                .rev()
                .find(|e| e.kind == "events_api")
                .cloned()
                .expect("fake slack: no event to redeliver");
            let id = s.envelope("events_api", last.payload);
            if let Some(e) = s.envelopes.iter_mut().find(|e| e.id == id) {
                e.attempts = 1;
            }
            id
        })
    }

    // ---- failures and the connection ----

    /// The next call of `method` fails with `status` (429: `Retry-After: retry_after`).
    pub fn fail_next(&self, method: &str, status: u16, retry_after: Option<u64>) {
        self.shared.lock().failures.push(Failure { method: method.into(), status, retry_after, error: None });
    }

    /// Slack asks the app to reconnect (`disconnect` with `reason`).
    pub fn request_reconnect(&self, reason: &str) {
        self.shared.change(|s| s.disconnect = Some(reason.into()));
    }

    /// The socket drops without a word.
    pub fn drop_connection(&self) {
        self.shared.change(|s| s.drop_connection = true);
    }

    // ---- inspection ----

    /// The bot's messages in `channel` (ephemeral ones included), oldest first.
    pub fn bot_messages(&self, channel: &str) -> Vec<SlackMessage> {
        self.shared
            .lock()
            .messages
            .values()
            .filter(|m| m.channel == channel && m.user.is_none() && !m.versions.is_empty())
            .cloned()
            .collect()
    }

    pub fn message(&self, ts: &str) -> Option<SlackMessage> {
        self.shared.lock().messages.get(ts).cloned()
    }

    pub fn envelopes(&self) -> Vec<Envelope> {
        self.shared.lock().envelopes.clone()
    }

    /// Runs `f` on every request so far, in arrival order, without copying them:
    /// for a caller that polls while the bot works (a benchmark must not take the
    /// CPU it measures). The fake answers nothing while `f` runs.
    pub fn with_calls<R>(&self, f: impl FnOnce(&[Call]) -> R) -> R {
        f(&self.shared.lock().calls)
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.shared.lock().calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    /// `assistant.threads.*` calls: (method, body).
    pub fn assistant_calls(&self) -> Vec<(String, Value)> {
        self.shared.lock().assistant.clone()
    }

    pub fn connections(&self) -> u64 {
        self.shared.lock().connections
    }

    /// Sends each envelope to the open connections in turn, as Slack spreads
    /// events over an app's connections (several processes), instead of only to
    /// the newest (a reconnecting process).
    pub fn spread_over_connections(&self, spread: bool) {
        self.shared.change(|s| s.spread = spread);
    }

    /// While spreading, every envelope made from now on goes to connection
    /// `number` (from 1, in the order they opened) while it is open; `None`: in
    /// turn again.
    pub fn pin_to_connection(&self, number: Option<u64>) {
        self.shared.change(|s| s.pinned = number);
    }

    /// How many envelopes were last sent on each connection (by number).
    pub fn envelopes_by_connection(&self) -> std::collections::BTreeMap<u64, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for e in &self.shared.lock().envelopes {
            if let Some(connection) = e.connection {
                *counts.entry(connection).or_default() += 1;
            }
        }
        counts
    }

    /// Polls `f` every 20 ms.
    ///
    /// # Panics
    /// With `what` when `timeout` passes first.
    pub async fn wait_until<F: Fn(&FakeSlack) -> bool>(&self, what: &str, timeout: Duration, f: F) {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() >= timeout {
                let calls: Vec<String> = self.shared.lock().calls.iter().map(|c| c.method.clone()).collect();
                panic!("fake slack: timed out after {timeout:?} waiting for {what}; calls so far: {calls:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- HTTP mode ----

    /// POSTs every envelope not yet delivered to an app in HTTP mode at `url`,
    /// signed with `secret`, as Slack would (events as JSON, presses and slash
    /// commands as forms); returns the HTTP statuses. A 2xx settles the envelope.
    pub async fn deliver_http(&self, url: &str, secret: &str) -> Vec<u16> {
        let pending: Vec<Envelope> =
            self.shared.lock().envelopes.iter().filter(|e| e.acked_after.is_none()).cloned().collect();
        let mut statuses = Vec::new();
        for e in pending {
            let (body, form) = match e.kind.as_str() {
                "events_api" => (e.payload.to_string(), false),
                "interactive" => (form(&[("payload", e.payload.to_string())]), true),
                _ => {
                    let fields: Vec<(&str, String)> = e
                        .payload
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    (form(&fields), true)
                }
            };
            let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let signature = sign(secret, timestamp, body.as_bytes());
            let status = post_signed(url, &body, form, timestamp, &signature, e.attempts).await;
            let mut state = self.shared.lock();
            if let Some(stored) = state.envelopes.iter_mut().find(|s| s.id == e.id) {
                stored.attempts += 1;
                if (200..300).contains(&status) {
                    stored.acked_after = Some(Duration::ZERO);
                }
            }
            statuses.push(status);
        }
        statuses
    }
}

/// The action of pressing the button whose value is `value` in `blocks`, as
/// Slack reports it; a value no button has (a forged press) gets a made-up one.
fn pressed(blocks: &Value, value: &str, action_ts: String) -> Value {
    let found = blocks.as_array().into_iter().flatten().find_map(|block| {
        let button = block["elements"].as_array()?.iter().find(|e| e["value"] == value)?;
        Some((block["block_id"].as_str().unwrap_or("actions").to_string(), button.clone()))
    });
    let (block_id, button) = found.unwrap_or_else(|| {
        ("actions".into(), json!({"action_id": "forged", "text": {"type": "plain_text", "text": "?"}}))
    });
    let mut action = json!({"type": "button", "action_id": button["action_id"], "block_id": block_id, "value": value,
        "text": button["text"], "action_ts": action_ts});
    if let Some(style) = button.get("style") {
        action["style"] = style.clone();
    }
    action
}

fn form(fields: &[(&str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str()))).finish()
}

/// Slack's request signature: `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &message);
    format!("v0={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// POSTs a body with Slack's headers; the HTTP status, or 0 when nothing answered.
pub async fn post_signed(url: &str, body: &str, form: bool, timestamp: u64, signature: &str, retry: u64) -> u16 {
    let content_type = if form { "application/x-www-form-urlencoded" } else { "application/json" };
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("x-slack-request-timestamp", timestamp.to_string()),
        ("x-slack-signature", signature.to_string()),
    ];
    if retry > 0 {
        headers.push(("x-slack-retry-num", retry.to_string()));
        headers.push(("x-slack-retry-reason", "http_timeout".into()));
    }
    crate::http_post::post(url, &headers, body.as_bytes()).await
}
