//! sendMessage, editMessageText, editMessageReplyMarkup and deleteMessage, with Telegram's validation.

use serde_json::{json, Value};

use super::html;
use super::params::Params;
use super::state::{BotMessage, SentMessage, State};
use super::wire::{self, ApiError, ApiResult, ChatKind, MAX_TEXT_UTF16};

const NOT_MODIFIED: &str = "message is not modified: specified new message content and reply markup are exactly \
                            the same as a current content and reply markup of the message";

/// A text as Telegram stores it after applying `parse_mode` / `entities`.
struct Formatted {
    plain: String,
    entities: Vec<Value>,
}

/// Validates and parses a message text the way Telegram does.
fn format_text(raw: &str, parse_mode: Option<&str>, entities: Option<Value>) -> Result<Formatted, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    let formatted = match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => {
            let entities = entities.and_then(|e| e.as_array().cloned()).unwrap_or_default();
            Formatted { plain: raw.to_owned(), entities }
        }
        Some("html") => {
            let parsed =
                html::parse(raw).map_err(|reason| ApiError::bad_request(format!("can't parse entities: {reason}")))?;
            Formatted { plain: parsed.text, entities: parsed.entities }
        }
        // Accepted as is: the fake does not parse Markdown.
        Some("markdownv2" | "markdown") => Formatted { plain: raw.to_owned(), entities: Vec::new() },
        Some(_) => return Err(ApiError::bad_request("unsupported parse_mode")),
    };
    if formatted.plain.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if wire::utf16_len(&formatted.plain) > MAX_TEXT_UTF16 {
        return Err(ApiError::bad_request("message is too long"));
    }
    Ok(formatted)
}

/// The `reply_markup` parameter, validated. Returns it as sent plus the inline
/// keyboard Telegram would echo in the Message (`None` when absent or empty).
fn reply_markup(params: &Params) -> Result<(Option<Value>, Option<Value>), ApiError> {
    let Some(markup) = params.json("reply_markup") else { return Ok((None, None)) };
    let Some(rows) = markup.get("inline_keyboard") else { return Ok((Some(markup), None)) };
    let Some(rows) = rows.as_array() else { return Err(ApiError::bad_request("can't parse inline keyboard button")) };
    for row in rows {
        let Some(buttons) = row.as_array() else {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Array",
            ));
        };
        for button in buttons {
            if !button["text"].is_string() {
                return Err(ApiError::bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                ));
            }
            if let Some(data) = button.get("callback_data") {
                let len = data.as_str().map_or(0, str::len);
                if !(1..=64).contains(&len) {
                    return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
                }
            }
        }
    }
    let inline = rows.iter().any(|row| row.as_array().is_some_and(|b| !b.is_empty()));
    let echoed = inline.then(|| json!({"inline_keyboard": rows}));
    Ok((Some(markup), echoed))
}

pub fn send_message(state: &mut State, params: &Params) -> ApiResult {
    let chat = params.chat_id()?;
    let raw = params.string("text").unwrap_or_default();
    let parse_mode = params.string("parse_mode").filter(|m| !m.is_empty());
    let formatted = format_text(&raw, parse_mode.as_deref(), params.json("entities"))?;
    let (markup, echoed_markup) = reply_markup(params)?;
    let thread = params.i64("message_thread_id");
    let reply = params.json("reply_parameters").filter(Value::is_object);
    let reply_to = match &reply {
        Some(reply) => Params::from_value(reply).i64("message_id"),
        None => params.i64("reply_to_message_id"),
    };
    let allow_missing = reply.as_ref().is_some_and(|r| r["allow_sending_without_reply"] == json!(true))
        || params.flag("allow_sending_without_reply");
    let replied = reply_to.and_then(|id| state.any_message(chat, id));
    if reply_to.is_some() && replied.is_none() && !allow_missing {
        return Err(ApiError::bad_request("message to be replied not found"));
    }

    let message_id = state.next_message_id();
    let mut json =
        wire::message(message_id, state.chat_json(chat), wire::bot_user(), &formatted.plain, formatted.entities);
    if let Some(thread) = thread {
        json["message_thread_id"] = json!(thread);
        if state.chat_kind(chat) == ChatKind::Forum {
            json["is_topic_message"] = json!(true);
        }
    }
    if let Some(mut replied) = replied {
        wire::set_or_remove(&mut replied, "reply_to_message", None);
        json["reply_to_message"] = replied;
    }
    wire::set_or_remove(&mut json, "reply_markup", echoed_markup);
    let sent = SentMessage {
        message_id,
        chat_id: chat,
        thread_id: thread,
        text: raw,
        plain_text: formatted.plain,
        parse_mode,
        reply_markup: markup,
        reply_to: replied_id(&json),
        edits: Vec::new(),
        deleted: false,
    };
    state.bot_messages.push(BotMessage { sent, json: json.clone() });
    Ok(json)
}

fn replied_id(json: &Value) -> Option<i64> {
    json["reply_to_message"]["message_id"].as_i64()
}

/// The bot's message to edit, or why it can't be edited.
fn editable<'a>(state: &'a mut State, params: &Params) -> Result<&'a mut BotMessage, ApiError> {
    if params.string("inline_message_id").is_some() {
        return Err(ApiError::bad_request("message to edit not found"));
    }
    let chat = params.chat_id()?;
    let message_id = params.message_id()?;
    if state.user_messages.contains_key(&(chat, message_id)) {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    state.live_bot_message_mut(chat, message_id).ok_or_else(|| ApiError::bad_request("message to edit not found"))
}

pub fn edit_message_text(state: &mut State, params: &Params) -> ApiResult {
    let raw = params.string("text").unwrap_or_default();
    let parse_mode = params.string("parse_mode").filter(|m| !m.is_empty());
    let (markup, echoed_markup) = reply_markup(params)?;
    let message = editable(state, params)?;
    let formatted = format_text(&raw, parse_mode.as_deref(), params.json("entities"))?;
    let entities = (!formatted.entities.is_empty()).then_some(Value::Array(formatted.entities));
    let json = &mut message.json;
    if json["text"] == json!(formatted.plain)
        && json.get("entities") == entities.as_ref()
        && json.get("reply_markup") == echoed_markup.as_ref()
    {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    json["text"] = json!(formatted.plain);
    wire::set_or_remove(json, "entities", entities);
    wire::set_or_remove(json, "reply_markup", echoed_markup);
    json["edit_date"] = json!(wire::now());
    let sent = &mut message.sent;
    sent.edits.push(raw.clone());
    sent.text = raw;
    sent.plain_text = formatted.plain;
    sent.parse_mode = parse_mode;
    sent.reply_markup = markup;
    Ok(message.json.clone())
}

/// An absent or empty `reply_markup` removes the keyboard.
pub fn edit_message_reply_markup(state: &mut State, params: &Params) -> ApiResult {
    let (markup, echoed_markup) = reply_markup(params)?;
    let message = editable(state, params)?;
    if message.json.get("reply_markup") == echoed_markup.as_ref() {
        return Err(ApiError::bad_request(NOT_MODIFIED));
    }
    wire::set_or_remove(&mut message.json, "reply_markup", echoed_markup.clone());
    message.json["edit_date"] = json!(wire::now());
    message.sent.reply_markup = markup.filter(|_| echoed_markup.is_some());
    Ok(message.json.clone())
}

pub fn delete_message(state: &mut State, params: &Params) -> ApiResult {
    let chat = params.chat_id()?;
    let message_id = params.message_id()?;
    if state.user_messages.remove(&(chat, message_id)).is_some() {
        return Ok(json!(true));
    }
    match state.live_bot_message_mut(chat, message_id) {
        Some(message) => {
            message.sent.deleted = true;
            Ok(json!(true))
        }
        None => Err(ApiError::bad_request("message to delete not found")),
    }
}
