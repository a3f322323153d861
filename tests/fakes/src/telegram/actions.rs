//! answerCallbackQuery, sendChatAction and the bot command list methods.

use serde_json::{json, Value};

use super::params::Params;
use super::state::{CallbackAnswer, State};
use super::wire::{ApiError, ApiResult};

const QUERY_INVALID: &str = "query is too old and response timeout expired or query ID is invalid";

const CHAT_ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// Each query can be answered once.
pub fn answer_callback_query(state: &mut State, params: &Params) -> ApiResult {
    let id = params.string("callback_query_id").unwrap_or_default();
    let text = params.string("text");
    let Some(answered @ false) = state.callbacks.get_mut(&id) else {
        return Err(ApiError::bad_request(QUERY_INVALID));
    };
    if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    *answered = true;
    let show_alert = params.flag("show_alert");
    state.callback_answers.push(CallbackAnswer { callback_query_id: id, text, show_alert });
    Ok(json!(true))
}

pub fn send_chat_action(state: &mut State, params: &Params) -> ApiResult {
    let chat = params.chat_id()?;
    let action = params.string("action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    state.chat_actions.push((chat, params.i64("message_thread_id"), action));
    Ok(json!(true))
}

/// Replaces the command list (scope and language are ignored).
pub fn set_my_commands(state: &mut State, params: &Params) -> ApiResult {
    let Some(Value::Array(items)) = params.json("commands") else {
        return Err(ApiError::bad_request("parameter \"commands\" is required"));
    };
    let mut commands = Vec::new();
    for item in &items {
        let command = item["command"].as_str().unwrap_or_default();
        let description = item["description"].as_str().unwrap_or_default();
        let valid_name = (1..=32).contains(&command.len())
            && command.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
        }
        if !(1..=256).contains(&description.chars().count()) {
            return Err(ApiError::bad_request("BOT_COMMAND_DESCRIPTION_INVALID"));
        }
        commands.push((command.to_owned(), description.to_owned()));
    }
    state.commands = commands;
    Ok(json!(true))
}

pub fn get_my_commands(state: &State) -> ApiResult {
    let commands: Vec<Value> = state
        .commands
        .iter()
        .map(|(command, description)| json!({"command": command, "description": description}))
        .collect();
    Ok(Value::Array(commands))
}

pub fn delete_my_commands(state: &mut State) -> ApiResult {
    state.commands.clear();
    Ok(json!(true))
}
