//! Shared state of the fake Telegram server and the records tests inspect.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::watch;

use super::wire::{self, ApiError, ChatKind};

/// A message the bot sent, with its current state.
#[derive(Clone, Debug, PartialEq)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat_id: i64,
    pub thread_id: Option<i64>,
    /// Current text exactly as the bot sent it (HTML tags and all).
    pub text: String,
    /// Current text as users see it: after entity parsing for `parse_mode` HTML.
    pub plain_text: String,
    pub parse_mode: Option<String>,
    /// Current `reply_markup` as the bot sent it; `None` once removed.
    pub reply_markup: Option<Value>,
    pub reply_to: Option<i64>,
    /// Raw texts of successful `editMessageText` calls, in order.
    pub edits: Vec<String>,
    pub deleted: bool,
}

/// One successful `answerCallbackQuery`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackAnswer {
    pub callback_query_id: String,
    pub text: Option<String>,
    pub show_alert: bool,
}

/// One request to the fake, whatever its outcome.
#[derive(Clone, Debug)]
pub struct Call {
    /// Method name in lowercase (`sendmessage`).
    pub method: String,
    /// Query and body parameters merged into one object (form values are text).
    pub params: Value,
    pub at: Instant,
}

/// A sent message plus the Message object Telegram would return for it now.
pub(crate) struct BotMessage {
    pub sent: SentMessage,
    pub json: Value,
}

pub(crate) struct StoredUpdate {
    pub id: i64,
    /// `message`, `callback_query`, ...: what `allowed_updates` filters on.
    pub kind: String,
    pub json: Value,
}

pub(crate) struct Webhook {
    pub url: String,
    pub secret: Option<String>,
}

struct Failure {
    method: String,
    error: ApiError,
}

#[derive(Default)]
pub(crate) struct State {
    last_update_id: i64,
    pub updates: Vec<StoredUpdate>,
    /// Highest offset passed to getUpdates; updates below it are forgotten.
    pub confirmed_offset: i64,
    /// Updates a webhook accepted with a 2xx, or dropped by `drop_pending_updates`.
    pub settled: HashSet<i64>,
    /// Remembered like Telegram does: a later call without the parameter keeps it.
    pub allowed_updates: Option<Vec<String>>,
    last_message_id: i64,
    chats: HashMap<i64, ChatKind>,
    /// Injected user messages by `(chat, message_id)`, as last seen.
    pub user_messages: HashMap<(i64, i64), Value>,
    pub bot_messages: Vec<BotMessage>,
    /// Callback query id -> already answered.
    pub callbacks: HashMap<String, bool>,
    pub callback_answers: Vec<CallbackAnswer>,
    pub chat_actions: Vec<(i64, Option<i64>, String)>,
    pub commands: Vec<(String, String)>,
    pub calls: Vec<Call>,
    pub webhook: Option<Webhook>,
    failures: Vec<Failure>,
    /// getUpdates calls are held and never answered (a connection that went silent).
    pub polls_silent: bool,
    /// getUpdates calls under way now.
    pub polls_active: usize,
    /// Bumped by every getUpdates call: an older one still waiting ends with
    /// Telegram's 409 "terminated by other getUpdates request".
    pub poll_generation: u64,
    /// getUpdates calls that began while another was under way (two pollers).
    pub concurrent_polls: usize,
}

impl State {
    /// Message ids are unique across all chats.
    pub fn next_message_id(&mut self) -> i64 {
        self.last_message_id += 1;
        self.last_message_id
    }

    pub fn next_callback_id(&mut self) -> String {
        format!("cq-{}", self.callbacks.len() + 1)
    }

    pub fn chat_kind(&self, chat: i64) -> ChatKind {
        self.chats.get(&chat).copied().unwrap_or_else(|| ChatKind::guess(chat))
    }

    /// Registers a chat; once a forum, always a forum.
    pub fn note_chat(&mut self, chat: i64, kind: ChatKind) {
        let entry = self.chats.entry(chat).or_insert(kind);
        if *entry != ChatKind::Forum {
            *entry = kind;
        }
    }

    pub fn chat_json(&self, chat: i64) -> Value {
        wire::chat(chat, self.chat_kind(chat))
    }

    pub fn bot_message(&self, chat: i64, message_id: i64) -> Option<&BotMessage> {
        self.bot_messages.iter().find(|m| m.sent.chat_id == chat && m.sent.message_id == message_id)
    }

    /// A bot message that still exists.
    pub fn live_bot_message_mut(&mut self, chat: i64, message_id: i64) -> Option<&mut BotMessage> {
        self.bot_messages
            .iter_mut()
            .find(|m| m.sent.chat_id == chat && m.sent.message_id == message_id && !m.sent.deleted)
    }

    /// Any message in that chat, as its Message object (for `reply_to_message`).
    pub fn any_message(&self, chat: i64, message_id: i64) -> Option<Value> {
        let bot = self.bot_message(chat, message_id).filter(|m| !m.sent.deleted).map(|m| m.json.clone());
        bot.or_else(|| self.user_messages.get(&(chat, message_id)).cloned())
    }

    /// Stores an update under the next id (setting `update_id` if it is an object).
    pub fn push_update(&mut self, mut json: Value) -> i64 {
        self.last_update_id += 1;
        let id = self.last_update_id;
        let kind = match &mut json {
            Value::Object(map) => {
                map.insert("update_id".to_owned(), Value::from(id));
                map.keys().find(|k| *k != "update_id").cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        self.updates.push(StoredUpdate { id, kind, json });
        id
    }

    /// Not yet confirmed by an offset nor accepted by a webhook, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &StoredUpdate> {
        self.updates.iter().filter(|u| u.id >= self.confirmed_offset && !self.settled.contains(&u.id))
    }

    pub fn update_json(&self, id: i64) -> Option<Value> {
        self.updates.iter().find(|u| u.id == id).map(|u| u.json.clone())
    }

    pub fn add_failure(&mut self, method: &str, error: ApiError) {
        self.failures.push(Failure { method: method.to_ascii_lowercase(), error });
    }

    /// The oldest injected failure for `method` (lowercase), consuming it.
    pub fn take_failure(&mut self, method: &str) -> Option<ApiError> {
        let index = self.failures.iter().position(|f| f.method == method)?;
        Some(self.failures.remove(index).error)
    }
}

/// State shared between the handle and the request handlers.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped on every injected update, to wake long polls.
    updates: watch::Sender<u64>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared { state: Mutex::new(State::default()), updates: watch::Sender::new(0) }
    }
}

impl Shared {
    /// A panicking test thread must not wedge the server, so poison is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds an update under the lock, stores it and wakes long polls.
    pub fn inject(&self, build: impl FnOnce(&mut State) -> Value) -> i64 {
        let id = {
            let mut state = self.lock();
            let update = build(&mut state);
            state.push_update(update)
        };
        self.updates.send_modify(|n| *n += 1);
        id
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Wakes every long poll waiting now (to look at the state again).
    pub fn wake_polls(&self) {
        self.updates.send_modify(|n| *n += 1);
    }

    /// Makes getUpdates silent (held, never answered), or answer again; wakes
    /// the polls waiting now so they go silent too.
    pub fn set_polls_silent(&self, silent: bool) {
        self.lock().polls_silent = silent;
        self.updates.send_modify(|n| *n += 1);
    }
}
