//! Bot API wire objects (User, Chat, entities) and the `{"ok":...}` response envelope.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

pub const TOKEN: &str = "123456:TEST-TOKEN";
pub const BOT_ID: i64 = 999;
pub const BOT_USERNAME: &str = "switchboard_test_bot";
pub const BOT_FIRST_NAME: &str = "Switchboard Test Bot";

/// Longest message text Telegram accepts, in UTF-16 code units after entity parsing.
pub const MAX_TEXT_UTF16: usize = 4096;

/// A failed Bot API call: HTTP status plus the `description` Telegram would send.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, description: impl Into<String>) -> ApiError {
        ApiError { status, description: description.into(), retry_after: None }
    }

    /// 400 with `"Bad Request: {reason}"`.
    pub fn bad_request(reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(400, format!("Bad Request: {reason}"))
    }

    pub fn not_found_method() -> ApiError {
        ApiError::new(404, "Not Found: method not found")
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized")
    }
}

pub type ApiResult = Result<Value, ApiError>;

/// The JSON envelope (`ok`/`result` or `ok`/`error_code`/`description`) as an HTTP response.
pub fn respond(result: ApiResult) -> Response {
    match result {
        Ok(value) => Json(json!({"ok": true, "result": value})).into_response(),
        Err(error) => {
            let mut body = json!({"ok": false, "error_code": error.status, "description": error.description});
            if let Some(secs) = error.retry_after {
                body["parameters"] = json!({"retry_after": secs});
            }
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(body)).into_response()
        }
    }
}

/// Seconds since the Unix epoch (message `date`).
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(1)
}

/// Length as Telegram counts it: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A human user: first name "User {id}", username "user{id}".
pub fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User {id}"), "username": format!("user{id}")})
}

pub fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

/// `getMe` result: the bot user plus the bot-only flags teloxide's `Me` requires.
pub fn me() -> Value {
    let mut me = bot_user();
    let flags = [
        ("can_join_groups", true),
        ("can_read_all_group_messages", false),
        ("supports_inline_queries", false),
        ("can_connect_to_business", false),
        ("has_main_web_app", false),
        ("has_topics_enabled", false),
        ("allows_users_to_create_topics", false),
    ];
    for (name, value) in flags {
        me[name] = Value::Bool(value);
    }
    me
}

/// Kind of a chat the fake knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    Private,
    Supergroup,
    /// A supergroup with topics enabled.
    Forum,
}

impl ChatKind {
    /// What an unseen chat id most likely is: users are positive, groups negative.
    pub fn guess(id: i64) -> ChatKind {
        if id > 0 {
            ChatKind::Private
        } else {
            ChatKind::Supergroup
        }
    }
}

pub fn chat(id: i64, kind: ChatKind) -> Value {
    match kind {
        ChatKind::Private => {
            json!({"id": id, "type": "private", "first_name": format!("User {id}"), "username": format!("user{id}")})
        }
        ChatKind::Supergroup => json!({"id": id, "type": "supergroup", "title": format!("Chat {id}")}),
        ChatKind::Forum => json!({"id": id, "type": "supergroup", "title": format!("Chat {id}"), "is_forum": true}),
    }
}

fn entity(kind: &str, offset: usize, length: usize) -> Value {
    json!({"type": kind, "offset": offset, "length": length})
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Entities Telegram would attach to a user's plain text: a `bot_command` for a
/// leading "/cmd" (including an "@bot" suffix) and a `mention` per "@username".
pub fn detect_entities(text: &str) -> Vec<Value> {
    let mut entities = Vec::new();
    let mut command_end = 0;
    if let Some(rest) = text.strip_prefix('/') {
        let token_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..token_len];
        let name = token.split('@').next().unwrap_or_default();
        if !name.is_empty() && name.chars().all(is_username_char) {
            command_end = 1 + token_len;
            entities.push(entity("bot_command", 0, utf16_len(&text[..command_end])));
        }
    }
    let mut previous: Option<char> = None;
    for (at, c) in text.char_indices() {
        let starts_word = previous.is_none_or(|p| !is_username_char(p));
        previous = Some(c);
        if c != '@' || at < command_end || !starts_word {
            continue;
        }
        let name_len = text[at + 1..].find(|c: char| !is_username_char(c)).unwrap_or(text.len() - at - 1);
        if (5..=32).contains(&name_len) {
            entities.push(entity("mention", utf16_len(&text[..at]), 1 + name_len));
        }
    }
    entities
}

/// Sets `key` to `value`, or removes it when `value` is `None`.
pub fn set_or_remove(object: &mut Value, key: &str, value: Option<Value>) {
    if let Value::Object(map) = object {
        match value {
            Some(value) => {
                map.insert(key.to_owned(), value);
            }
            None => {
                map.remove(key);
            }
        }
    }
}

/// A message object with the fields every message has.
pub fn message(id: i64, chat: Value, from: Value, text: &str, entities: Vec<Value>) -> Value {
    let mut map = Map::new();
    map.insert("message_id".into(), json!(id));
    map.insert("from".into(), from);
    map.insert("chat".into(), chat);
    map.insert("date".into(), json!(now()));
    map.insert("text".into(), json!(text));
    if !entities.is_empty() {
        map.insert("entities".into(), Value::Array(entities));
    }
    Value::Object(map)
}
