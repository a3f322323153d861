//! Fake Telegram Bot API server: update injection, failure injection and a record of what the bot did.
//!
//! Speaks the real wire protocol (`POST /bot{TOKEN}/{Method}`, JSON, form or
//! multipart parameters, `{"ok":...}` envelopes), so teloxide works against
//! it unmodified via `Bot::new(fake.token()).set_api_url(fake.api_url().parse()?)`.

mod actions;
mod handlers;
mod html;
mod inject;
mod messages;
mod params;
mod state;
mod updates;
mod webhook;
mod wire;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use state::{Call, CallbackAnswer, SentMessage};

use inject::Target;
use state::Shared;
use wire::{ApiError, ChatKind};

/// Handle to a running fake Bot API server. Clones share the same server,
/// which stops (closing every open connection) when the last handle is dropped.
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: Arc<crate::server::ServerTask>,
}

impl FakeTelegram {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime. Token
    /// `123456:TEST-TOKEN`, bot user id 999, username `switchboard_test_bot`.
    pub async fn start() -> FakeTelegram {
        let shared = Arc::new(Shared::default());
        let app = handlers::router(Arc::clone(&shared));
        let (addr, server) = crate::server::start("fake telegram", app).await;
        FakeTelegram { shared, addr, _server: server }
    }

    /// `http://127.0.0.1:PORT`, the API base URL (teloxide's `set_api_url`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> String {
        wire::TOKEN.to_owned()
    }

    pub fn bot_username(&self) -> String {
        wire::BOT_USERNAME.to_owned()
    }

    pub fn bot_id(&self) -> i64 {
        wire::BOT_ID
    }

    // ---- injecting updates; each returns the new update_id ----

    /// A private message; the chat id is the user id. "/cmd args" gets a `bot_command` entity.
    pub fn send_dm(&self, user: i64, text: &str) -> i64 {
        let target = Target { chat: user, kind: ChatKind::Private, thread: None };
        self.shared.inject(|state| inject::user_message(state, &target, user, text))
    }

    /// A supergroup message; "@switchboard_test_bot" gets a `mention` entity.
    pub fn send_group(&self, chat: i64, user: i64, text: &str) -> i64 {
        let target = Target { chat, kind: ChatKind::Supergroup, thread: None };
        self.shared.inject(|state| inject::user_message(state, &target, user, text))
    }

    /// A message in a forum topic (`message_thread_id`, `is_topic_message`); the chat becomes a forum.
    pub fn send_topic(&self, chat: i64, thread: i64, user: i64, text: &str) -> i64 {
        let target = Target { chat, kind: ChatKind::Forum, thread: Some(thread) };
        self.shared.inject(|state| inject::user_message(state, &target, user, text))
    }

    /// A reply whose `reply_to_message` is that bot message as it currently is.
    ///
    /// # Panics
    /// When the bot sent no such message in `chat`.
    pub fn reply_to_bot(&self, chat: i64, user: i64, bot_message_id: i64, text: &str) -> i64 {
        self.shared.inject(|state| inject::reply_to_bot(state, chat, user, bot_message_id, text))
    }

    /// An `edited_message` update for an earlier user message.
    pub fn edit_user_message(&self, chat: i64, user: i64, message_id: i64, text: &str) -> i64 {
        self.shared.inject(|state| inject::edit_user_message(state, chat, user, message_id, text))
    }

    /// A `callback_query` (id `cq-<n>`) for a button on a bot message.
    ///
    /// # Panics
    /// When the bot sent no such message in `chat`.
    pub fn click(&self, user: i64, chat: i64, bot_message_id: i64, data: &str) -> i64 {
        self.shared.inject(|state| inject::click(state, user, chat, bot_message_id, data))
    }

    /// Stores `update` as given, except that `update_id` is set (if it is an object).
    pub fn push_raw_update(&self, update: Value) -> i64 {
        self.shared.inject(|_| update)
    }

    // ---- failures ----

    /// The next call of `method` (any case) fails once with this status and
    /// description (and `parameters.retry_after` if given). Queued per method;
    /// takes precedence over everything but the token check.
    pub fn fail_next(&self, method: &str, status: u16, description: &str, retry_after: Option<u64>) {
        let error = ApiError { status, description: description.to_owned(), retry_after };
        self.shared.lock().add_failure(method, error);
    }

    /// While `silent`, getUpdates calls (those waiting now too) are held and
    /// never answered, as over a connection that died without a reset. Calls
    /// made after it is turned off answer normally.
    pub fn set_polls_silent(&self, silent: bool) {
        self.shared.set_polls_silent(silent);
    }

    // ---- inspection ----

    /// Every message the bot sent, in order, with its current state.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.lock().bot_messages.iter().map(|m| m.sent.clone()).collect()
    }

    pub fn messages_in(&self, chat: i64) -> Vec<SentMessage> {
        self.sent().into_iter().filter(|m| m.chat_id == chat).collect()
    }

    /// The Message object Telegram would return for that bot message now.
    pub fn message_json(&self, chat: i64, message_id: i64) -> Option<Value> {
        self.shared.lock().bot_message(chat, message_id).map(|m| m.json.clone())
    }

    pub fn callback_answers(&self) -> Vec<CallbackAnswer> {
        self.shared.lock().callback_answers.clone()
    }

    /// `(chat, thread, action)` of every successful sendChatAction.
    pub fn chat_actions(&self) -> Vec<(i64, Option<i64>, String)> {
        self.shared.lock().chat_actions.clone()
    }

    /// `(command, description)` from the last successful setMyCommands.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.shared.lock().commands.clone()
    }

    /// Every request, whatever its outcome, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Runs `f` on every request so far, in arrival order, without copying them:
    /// for a caller that polls while the bot works (a benchmark must not take the
    /// CPU it measures). The fake answers nothing while `f` runs.
    pub fn with_calls<R>(&self, f: impl FnOnce(&[Call]) -> R) -> R {
        f(&self.shared.lock().calls)
    }

    /// Calls of one method (any case).
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.calls().into_iter().filter(|c| c.method == method).collect()
    }

    /// getUpdates calls that began while another was under way: more than one
    /// poller for the bot (Telegram ends the older call with a 409 conflict).
    pub fn concurrent_polls(&self) -> usize {
        self.shared.lock().concurrent_polls
    }

    /// getUpdates calls under way now.
    pub fn polls_active(&self) -> usize {
        self.shared.lock().polls_active
    }

    /// Highest offset the bot has passed to getUpdates (0 if none).
    pub fn confirmed_offset(&self) -> i64 {
        self.shared.lock().confirmed_offset
    }

    /// The remembered `allowed_updates` (from getUpdates or setWebhook).
    pub fn last_allowed_updates(&self) -> Option<Vec<String>> {
        self.shared.lock().allowed_updates.clone()
    }

    /// Polls `f` every 20 ms.
    ///
    /// # Panics
    /// With `what` when `timeout` passes first.
    pub async fn wait_until<F: Fn(&FakeTelegram) -> bool>(&self, what: &str, timeout: Duration, f: F) {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() >= timeout {
                let methods: Vec<String> = self.calls().into_iter().map(|c| c.method).collect();
                panic!("fake telegram: timed out after {timeout:?} waiting for {what}; calls so far: {methods:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- webhook ----

    /// `(url, secret_token)` from the last setWebhook, unless deleted since.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.as_ref().map(|w| (w.url.clone(), w.secret.clone()))
    }

    /// POSTs the stored update to the webhook URL (with the secret header if
    /// one was set) and returns the HTTP status; 0 if the URL is not `http://`,
    /// the connection fails or there is no answer within 10 s. A 2xx settles
    /// the update: getUpdates and pending_update_count no longer include it.
    ///
    /// # Panics
    /// When no webhook is set or no update has that id.
    pub async fn deliver_webhook(&self, update_id: i64) -> u16 {
        let (url, secret, body) = {
            let state = self.shared.lock();
            let Some(hook) = state.webhook.as_ref() else {
                panic!("fake telegram: deliver_webhook: no webhook is set")
            };
            let Some(update) = state.update_json(update_id) else {
                panic!("fake telegram: deliver_webhook: no update with id {update_id}")
            };
            (hook.url.clone(), hook.secret.clone(), update.to_string())
        };
        let status = webhook::post(&url, secret.as_deref(), &body).await;
        if (200..300).contains(&status) {
            self.shared.lock().settled.insert(update_id);
        }
        status
    }
}
