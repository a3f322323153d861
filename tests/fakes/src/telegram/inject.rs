//! Builds the updates a test injects: user messages, edits, replies and button clicks.

use serde_json::{json, Value};

use super::state::State;
use super::wire::{self, ChatKind};

/// Where a user's message goes.
pub struct Target {
    pub chat: i64,
    pub kind: ChatKind,
    pub thread: Option<i64>,
}

/// A `message` update from `user` with detected entities.
pub fn user_message(state: &mut State, target: &Target, user: i64, text: &str) -> Value {
    state.note_chat(target.chat, target.kind);
    let message = new_user_message(state, target.chat, target.thread, user, text);
    json!({"message": message})
}

/// A `message` update replying to a bot message, in that message's chat and thread.
///
/// # Panics
/// When the bot never sent `bot_message_id` in `chat`.
pub fn reply_to_bot(state: &mut State, chat: i64, user: i64, bot_message_id: i64, text: &str) -> Value {
    let Some(original) = state.bot_message(chat, bot_message_id) else {
        panic!("fake telegram: reply_to_bot: the bot sent no message {bot_message_id} in chat {chat}");
    };
    let thread = original.sent.thread_id;
    let mut replied = original.json.clone();
    // Telegram never nests replies more than one level deep.
    wire::set_or_remove(&mut replied, "reply_to_message", None);
    let mut message = new_user_message(state, chat, thread, user, text);
    message["reply_to_message"] = replied;
    state.user_messages.insert((chat, message["message_id"].as_i64().unwrap_or_default()), message.clone());
    json!({"message": message})
}

/// An `edited_message` update: the stored message (or a new one with that id)
/// with the new text and an `edit_date`.
pub fn edit_user_message(state: &mut State, chat: i64, user: i64, message_id: i64, text: &str) -> Value {
    let mut message = match state.user_messages.get(&(chat, message_id)) {
        Some(message) => message.clone(),
        None => wire::message(message_id, state.chat_json(chat), wire::user(user), text, Vec::new()),
    };
    message["text"] = json!(text);
    let entities = wire::detect_entities(text);
    wire::set_or_remove(&mut message, "entities", (!entities.is_empty()).then_some(Value::Array(entities)));
    message["edit_date"] = json!(wire::now());
    state.user_messages.insert((chat, message_id), message.clone());
    json!({"edited_message": message})
}

/// A `callback_query` update for a button on a bot message.
///
/// # Panics
/// When the bot never sent `bot_message_id` in `chat`.
pub fn click(state: &mut State, user: i64, chat: i64, bot_message_id: i64, data: &str) -> Value {
    let Some(message) = state.bot_message(chat, bot_message_id).map(|m| m.json.clone()) else {
        panic!("fake telegram: click: the bot sent no message {bot_message_id} in chat {chat}");
    };
    let id = state.next_callback_id();
    state.callbacks.insert(id.clone(), false);
    let query = json!({
        "id": id,
        "from": wire::user(user),
        "message": message,
        "chat_instance": format!("{}", chat.unsigned_abs().wrapping_mul(7919)),
        "data": data,
    });
    json!({"callback_query": query})
}

fn new_user_message(state: &mut State, chat: i64, thread: Option<i64>, user: i64, text: &str) -> Value {
    let id = state.next_message_id();
    let mut message = wire::message(id, state.chat_json(chat), wire::user(user), text, wire::detect_entities(text));
    if let Some(thread) = thread {
        message["message_thread_id"] = json!(thread);
        if state.chat_kind(chat) == ChatKind::Forum {
            message["is_topic_message"] = json!(true);
        }
    }
    state.user_messages.insert((chat, id), message.clone());
    message
}
