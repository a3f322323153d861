//! Fake Discord: the HTTP API (v10) and the Gateway WebSocket on 127.0.0.1, with
//! helpers to inject messages, slash commands and button presses, to fail
//! requests (429s with `retry_after`, 5xx), to drop or silence the gateway
//! connection, and to inspect everything the bot sent.
//!
//! A client reaches it with the API base `api_url()` (`http://127.0.0.1:PORT`,
//! under which `/api/v10/...` is served); `GET /api/v10/gateway/bot` gives the
//! WebSocket address.

mod gateway;
mod rest;
mod state;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use rest::route_key;
pub use state::{Call, InteractionInfo, StoredMessage, APP_ID, BOT_ID, BOT_NAME, DM, GUILD_TEXT, PUBLIC_THREAD};

use state::{ChannelInfo, Failure, Shared};

/// The fake's bot token (its first part is the bot id in base64url).
pub fn token() -> String {
    // base64url("900000000000000001")
    "OTAwMDAwMDAwMDAwMDAwMDAx.GfAkEd.fake-discord-token-secret-part".to_string()
}

/// Handle to a running fake. Clones share it; it stops with the last one.
#[derive(Clone)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
    api: std::net::SocketAddr,
    _server: Arc<crate::server::ServerTask>,
    _gateway: Arc<crate::server::ServerTask>,
}

impl FakeDiscord {
    /// Starts the API and the gateway on 127.0.0.1 (heartbeats every 1.5 s).
    pub async fn start() -> FakeDiscord {
        let shared = Arc::new(Shared::default());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("fake discord: bind the gateway");
        let gateway_addr = listener.local_addr().expect("fake discord: gateway address");
        {
            let mut state = shared.lock();
            state.gateway_url = format!("ws://{gateway_addr}");
            state.heartbeat_ms = 1500;
        }
        let gateway = crate::server::ServerTask::spawn(gateway::serve(listener, shared.clone()));
        let (api, server) = crate::server::start("fake discord", rest::router(shared.clone())).await;
        FakeDiscord { shared, api, _server: server, _gateway: Arc::new(gateway) }
    }

    /// `http://127.0.0.1:PORT`: the base under which `/api/v10` is served.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// The bot token the fake accepts.
    pub fn token(&self) -> String {
        token()
    }

    /// The heartbeat interval sent in HELLO from now on.
    pub fn set_heartbeat(&self, interval: Duration) {
        self.shared.lock().heartbeat_ms = interval.as_millis() as u64;
    }

    // ---- the world ----

    /// A guild with text channels (ids of your choosing); announced to a
    /// connected bot with GUILD_CREATE.
    pub fn add_guild(&self, guild: &str, channels: &[&str]) {
        self.shared.change(|state| {
            for channel in channels {
                let info = ChannelInfo {
                    id: channel.to_string(),
                    kind: GUILD_TEXT,
                    guild: Some(guild.into()),
                    parent: None,
                    recipient: None,
                };
                state.channels.insert(channel.to_string(), info);
            }
            state.guilds.insert(guild.to_string(), channels.iter().map(|c| c.to_string()).collect());
            let data = state.guild_json(guild);
            state.dispatch("GUILD_CREATE", data);
        });
    }

    /// A public thread under `parent`; announced with THREAD_CREATE.
    pub fn add_thread(&self, parent: &str, thread: &str) {
        self.shared.change(|state| {
            let guild =
                state.channels.get(parent).and_then(|c| c.guild.clone()).expect("fake discord: no such parent channel");
            let info = ChannelInfo {
                id: thread.into(),
                kind: PUBLIC_THREAD,
                guild: Some(guild.clone()),
                parent: Some(parent.into()),
                recipient: None,
            };
            state.channels.insert(thread.into(), info);
            state.guilds.entry(guild).or_default().push(thread.into());
            let data = state.channel_json(thread).unwrap_or(Value::Null);
            state.dispatch("THREAD_CREATE", data);
        });
    }

    /// The DM channel between the bot and `user` (made if needed).
    pub fn dm_channel(&self, user: &str) -> String {
        self.shared.change(|state| {
            if let Some(c) = state.channels.values().find(|c| c.kind == DM && c.recipient.as_deref() == Some(user)) {
                return c.id.clone();
            }
            state.user_json(user);
            let id = state.next_id();
            let info =
                ChannelInfo { id: id.clone(), kind: DM, guild: None, parent: None, recipient: Some(user.into()) };
            state.channels.insert(id.clone(), info);
            id
        })
    }

    /// A guild channel or thread is deleted: announced with CHANNEL_DELETE or
    /// THREAD_DELETE; looking it up afterwards is a 404 (Unknown Channel).
    pub fn delete_channel(&self, id: &str) {
        self.shared.change(|state| {
            let full = state.channel_json(id).expect("fake discord: no such channel");
            let info = state.channels.remove(id).expect("fake discord: no such channel");
            if let Some(guild) = &info.guild {
                if let Some(ids) = state.guilds.get_mut(guild) {
                    ids.retain(|c| c != id);
                }
            }
            // A thread's deletion carries only its ids and type; a channel's, the channel.
            let (event, data) = if info.kind == PUBLIC_THREAD {
                let ids = json!({"id": id, "guild_id": info.guild, "parent_id": info.parent, "type": info.kind});
                ("THREAD_DELETE", ids)
            } else {
                ("CHANNEL_DELETE", full)
            };
            state.dispatch(event, data);
        });
    }

    // ---- what people do; each returns the new message's or interaction's id ----

    /// `user` writes to the bot directly.
    pub fn dm(&self, user: &str, text: &str) -> String {
        let channel = self.dm_channel(user);
        self.post(&channel, user, text, None, None)
    }

    /// `user` writes in a guild channel or thread; `mention` puts `<@bot>` first.
    pub fn say(&self, channel: &str, user: &str, text: &str, mention: bool) -> String {
        let text = if mention { format!("<@{BOT_ID}> {text}") } else { text.to_string() };
        self.post(channel, user, &text, None, None)
    }

    /// `user` replies to message `to` (the bot's, say) in `channel`.
    pub fn reply(&self, channel: &str, user: &str, to: &str, text: &str) -> String {
        self.post(channel, user, text, Some(to), None)
    }

    /// A message sent `ago` in the past (it is dispatched now, as if the bot had
    /// been connected; a bot that was not connected finds it in the history).
    pub fn say_at(&self, channel: &str, user: &str, text: &str, ago: Duration) -> String {
        self.post(channel, user, text, None, Some(ago))
    }

    /// Another bot writes in a channel.
    pub fn bot_says(&self, channel: &str, bot: &str, text: &str) -> String {
        self.shared.change(|state| {
            let mut author = state.user_json(bot);
            author["bot"] = json!(true);
            state.users.insert(bot.to_string(), author);
        });
        self.post(channel, bot, text, None, None)
    }

    fn post(&self, channel: &str, user: &str, text: &str, reply_to: Option<&str>, ago: Option<Duration>) -> String {
        self.shared.change(|state| {
            let info = state.channels.get(channel).cloned().unwrap_or_else(|| panic!("fake discord: no channel {channel}"));
            let id = match ago {
                Some(ago) => state.id_at(state::now_ms() - ago.as_millis() as u64),
                None => state.next_id(),
            };
            let author = state.user_json(user);
            let mut mentions = Vec::new();
            if text.contains(&format!("<@{BOT_ID}>")) || text.contains(&format!("<@!{BOT_ID}>")) {
                mentions.push(state::State::bot_json());
            }
            let mut message = json!({
                "id": id, "channel_id": channel, "author": author, "content": text, "type": 0,
                "timestamp": state::iso_of(&id), "edited_timestamp": null, "tts": false, "mention_everyone": false,
                "mentions": mentions, "mention_roles": [], "attachments": [], "embeds": [], "pinned": false,
                "components": [], "flags": 0,
            });
            if let Some(guild) = &info.guild {
                message["guild_id"] = json!(guild);
                message["member"] = json!({"roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0});
            }
            if let Some(to) = reply_to {
                let original = state.messages.get(to).map(|m| m.json.clone()).unwrap_or_else(|| panic!("fake discord: no message {to}"));
                message["type"] = json!(19);
                message["message_reference"] = json!({"message_id": to, "channel_id": channel});
                message["referenced_message"] = original;
            }
            let stored = StoredMessage { json: message.clone(), versions: vec![text.to_string()], ephemeral: false, allowed_mentions: vec![None] };
            state.messages.insert(id.clone(), stored);
            state.dispatch("MESSAGE_CREATE", message);
            id
        })
    }

    /// `user` invokes `/name` with `options` (`(name, value)`, strings) in
    /// `channel`. The interaction must be answered within 3 s.
    pub fn slash(&self, channel: &str, user: &str, name: &str, options: &[(&str, &str)]) -> String {
        let options: Vec<Value> = options.iter().map(|(n, v)| json!({"name": n, "type": 3, "value": v})).collect();
        let command_id = {
            let state = self.shared.lock();
            let mut registered = state.commands.values().filter_map(Value::as_array).flatten();
            registered.find(|c| c["name"] == name).and_then(|c| c["id"].as_str().map(str::to_string))
        };
        let data = json!({"id": command_id.unwrap_or_else(|| "1".into()), "name": name, "type": 1, "options": options});
        self.interaction(channel, user, 2, data, None)
    }

    /// `user` presses the button `custom_id` on message `message` in `channel`.
    pub fn click(&self, channel: &str, user: &str, message: &str, custom_id: &str) -> String {
        self.interaction(channel, user, 3, json!({"custom_id": custom_id, "component_type": 2}), Some(message))
    }

    fn interaction(&self, channel: &str, user: &str, kind: u64, data: Value, message: Option<&str>) -> String {
        self.shared.change(|state| {
            let info = state.channels.get(channel).cloned().unwrap_or_else(|| panic!("fake discord: no channel {channel}"));
            let id = state.next_id();
            let token = format!("aW50ZXJhY3Rpb246{id}:fake-token");
            let author = state.user_json(user);
            let mut payload = json!({
                "id": id, "application_id": APP_ID, "type": kind, "data": data, "token": token, "version": 1,
                "channel_id": channel, "channel": state.channel_json(channel), "locale": "en-US",
                "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {}, "context": 0,
                "attachment_size_limit": 10_485_760,
                // Guild, or the bot's DM (a DM channel of the bot's).
                "context": if info.guild.is_some() { 0 } else { 1 },
            });
            match &info.guild {
                Some(guild) => {
                    payload["guild_id"] = json!(guild);
                    payload["member"] = json!({"user": author, "roles": [], "permissions": "0", "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0});
                }
                None => payload["user"] = author,
            }
            if let Some(message) = message {
                let json = state.messages.get(message).map(|m| m.json.clone()).unwrap_or_else(|| panic!("fake discord: no message {message}"));
                payload["message"] = json;
            }
            let info = InteractionInfo {
                id: id.clone(),
                token,
                kind,
                channel: channel.into(),
                user: user.into(),
                created: Instant::now(),
                response: None,
                original: None,
                message: message.map(str::to_string),
                followups: Vec::new(),
            };
            state.interactions.insert(id.clone(), info);
            state.dispatch("INTERACTION_CREATE", payload);
            id
        })
    }

    /// Ages an interaction past its token's 15 minutes: answers through it fail
    /// as Discord's do then (401, Invalid Webhook Token).
    pub fn expire_interaction(&self, id: &str) {
        let mut state = self.shared.lock();
        if let Some(i) = state.interactions.get_mut(id) {
            i.created = Instant::now().checked_sub(Duration::from_secs(16 * 60)).unwrap_or(i.created);
        }
    }

    // ---- failures and the connection ----

    /// The next request to `route` (see [`route_key`]: `POST /channels/*/messages`)
    /// fails with `status`; a 429 carries `retry_after` (seconds) in its body and header.
    pub fn fail_next(&self, route: &str, status: u16, retry_after: Option<f64>, global: bool) {
        let body = match status {
            429 => {
                json!({"message": "You are being rate limited.", "retry_after": retry_after.unwrap_or(1.0), "global": global})
            }
            _ => json!({"message": format!("{status}: failure injected by the test"), "code": 0}),
        };
        self.shared.lock().failures.push(Failure { route: route.into(), status, body, retry_after });
    }

    /// The next request to `route` is handled `delay` late (a slow Discord).
    pub fn delay_next(&self, route: &str, delay: Duration) {
        self.shared.lock().delays.push((route.into(), delay));
    }

    /// Closes the current gateway connection with `code` (4000: resumable; 4004:
    /// authentication failed; 4009: session timed out, identify again).
    pub fn disconnect(&self, code: u16) {
        self.shared.change(|state| state.close_with = Some(code));
    }

    /// The current connection stops acknowledging heartbeats and sending events,
    /// without closing: a dead socket that looks open.
    pub fn go_silent(&self) {
        self.shared.change(|state| state.silent = Some(state.connections));
    }

    // ---- inspection ----

    /// The bot's messages in `channel` (ephemeral ones included), oldest first.
    pub fn bot_messages(&self, channel: &str) -> Vec<StoredMessage> {
        let state = self.shared.lock();
        state.messages.values().filter(|m| m.channel() == channel && m.author() == BOT_ID).cloned().collect()
    }

    /// Every message of the bot anywhere, oldest first.
    pub fn all_bot_messages(&self) -> Vec<StoredMessage> {
        self.shared.lock().messages.values().filter(|m| m.author() == BOT_ID).cloned().collect()
    }

    /// One message as Discord would return it now.
    pub fn message(&self, id: &str) -> Option<StoredMessage> {
        self.shared.lock().messages.get(id).cloned()
    }

    pub fn interaction_state(&self, id: &str) -> Option<InteractionInfo> {
        self.shared.lock().interactions.get(id).cloned()
    }

    /// The registered commands: `global` or a guild id -> the list.
    pub fn commands(&self, scope: &str) -> Option<Value> {
        self.shared.lock().commands.get(scope).cloned()
    }

    /// Channels typing was shown in, in order.
    pub fn typing(&self) -> Vec<String> {
        self.shared.lock().typing.iter().map(|(c, _)| c.clone()).collect()
    }

    /// Runs `f` on every request so far, in arrival order, without copying them:
    /// for a caller that polls while the bot works (a benchmark must not take the
    /// CPU it measures). The fake answers nothing while `f` runs.
    pub fn with_calls<R>(&self, f: impl FnOnce(&[Call]) -> R) -> R {
        f(&self.shared.lock().calls)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Calls whose route key (see [`route_key`]) is `route`.
    pub fn calls_to(&self, route: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| route_key(&c.method.parse().unwrap_or(axum::http::Method::GET), &c.path) == route)
            .collect()
    }

    /// (connections, fresh identifies, resumes) so far.
    pub fn sessions(&self) -> (u64, u64, u64) {
        let state = self.shared.lock();
        (state.connections, state.identifies, state.resumes)
    }

    /// The intents of the last IDENTIFY.
    pub fn intents(&self) -> Option<u64> {
        self.shared.lock().session.as_ref().map(|s| s.intents)
    }

    /// Every version of a bot message that would have pinged someone: content
    /// naming @everyone, @here, a user or a role, sent with `allowed_mentions`
    /// absent or allowing them (Discord's default is to allow all).
    pub fn pings(&self) -> Vec<String> {
        let mut found = Vec::new();
        for m in self.all_bot_messages() {
            for (content, allowed) in m.versions.iter().zip(m.allowed_mentions.iter()) {
                let names = content.contains("@everyone") || content.contains("@here") || content.contains("<@");
                let allows = match allowed {
                    None => true,
                    Some(a) => {
                        a["parse"].as_array().is_some_and(|p| !p.is_empty())
                            || a["users"].as_array().is_some_and(|u| !u.is_empty())
                            || a["roles"].as_array().is_some_and(|r| !r.is_empty())
                    }
                };
                if names && allows {
                    found.push(content.clone());
                }
            }
        }
        found
    }

    /// Polls `f` every 20 ms.
    ///
    /// # Panics
    /// With `what` when `timeout` passes first.
    pub async fn wait_until<F: Fn(&FakeDiscord) -> bool>(&self, what: &str, timeout: Duration, f: F) {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() >= timeout {
                let calls: Vec<String> = self.calls().iter().map(|c| format!("{} {}", c.method, c.path)).collect();
                panic!("fake discord: timed out after {timeout:?} waiting for {what}; calls so far: {calls:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
