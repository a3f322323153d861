//! The fake's HTTP API (v10): routing, authorisation, injected failures, and
//! each endpoint the adapter uses, strict where Discord is strict (2,000
//! characters, component shapes, one response per interaction within 3 s,
//! webhook tokens for 15 minutes, unknown ids).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::state::{iso_of, Call, ChannelInfo, Shared, State, StoredMessage, APP_ID, BOT_ID, DM};

/// An interaction must be answered within this long.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(3);
/// An interaction's token works for this long.
const TOKEN_LIFE: Duration = Duration::from_secs(15 * 60);
const MAX_CONTENT: usize = 2000;
const EPHEMERAL: u64 = 1 << 6;
const LOADING: u64 = 1 << 7;
/// How long an enforced nonce deduplicates sends.
const NONCE_MEMORY: Duration = Duration::from_secs(5 * 60);

/// An error answer: status, Discord's JSON error code and message.
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<f64>,
}

impl ApiError {
    fn new(status: u16, code: u64, message: &str) -> ApiError {
        ApiError { status, body: json!({"code": code, "message": message}), retry_after: None }
    }
    fn unknown_message() -> ApiError {
        ApiError::new(404, 10008, "Unknown Message")
    }
    fn unknown_channel() -> ApiError {
        ApiError::new(404, 10003, "Unknown Channel")
    }
    fn unknown_interaction() -> ApiError {
        ApiError::new(404, 10062, "Unknown interaction")
    }
    fn invalid(field: &str, why: &str) -> ApiError {
        ApiError {
            status: 400,
            body: json!({"code": 50035, "message": "Invalid Form Body", "errors": {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": why}]}}}),
            retry_after: None,
        }
    }
}

type Answer = Result<(StatusCode, Value), ApiError>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// The route with every id and token replaced by `*`: `POST /channels/*/messages`.
pub fn route_key(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches("/api/v10").split('/').collect();
    let mut out = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let token_slot = i >= 2 && matches!(segments[i - 2], "webhooks" | "interactions");
        if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() || token_slot {
            out.push("*");
        } else {
            out.push(s);
        }
    }
    format!("{method} {}", out.join("/"))
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let route = route_key(&method, &path);
    let delay = {
        let mut state = shared.lock();
        state.delays.iter().position(|(r, _)| *r == route).map(|i| state.delays.remove(i).1)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let answer = {
        let mut state = shared.lock();
        state.calls.push(Call {
            method: method.to_string(),
            path: path.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        respond_to(&mut state, &method, &path, uri.query().unwrap_or(""), &headers, &body, &route)
    };
    shared.wake.notify_waiters();
    match answer {
        Ok((status, _)) if status == StatusCode::NO_CONTENT => status.into_response(),
        Ok((status, value)) => (status, axum::Json(value)).into_response(),
        Err(error) => {
            let mut response =
                (StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(error.body))
                    .into_response();
            if let Some(secs) = error.retry_after {
                let headers = response.headers_mut();
                headers.insert("retry-after", secs.ceil().to_string().parse().expect("a number"));
            }
            response
        }
    }
}

fn respond_to(
    state: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Value,
    route: &str,
) -> Answer {
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return Err(ApiError::new(404, 0, "404: Not Found"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let by_token = matches!(parts.first(), Some(&"webhooks") | Some(&"interactions"));
    let authorised =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bot {}", super::token()));
    if !by_token && !authorised {
        return Err(ApiError::new(401, 0, "401: Unauthorized"));
    }
    if let Some(failure) = state.take_failure(route) {
        return Err(ApiError { status: failure.status, body: failure.body, retry_after: failure.retry_after });
    }
    let m = method.as_str();
    match (m, parts.as_slice()) {
        ("GET", ["users", "@me"]) => Ok((StatusCode::OK, State::bot_json())),
        ("GET", ["applications", "@me"] | ["oauth2", "applications", "@me"]) => Ok((StatusCode::OK, application())),
        ("GET", ["gateway", "bot"]) => Ok((
            StatusCode::OK,
            json!({"url": state.gateway_url.clone(), "shards": 1, "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        )),
        ("PUT", ["applications", app, "commands"]) => put_commands(state, app, None, body),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => put_commands(state, app, Some(guild), body),
        ("GET", ["channels", channel]) => {
            state.channel_json(channel).map(|c| (StatusCode::OK, c)).ok_or_else(ApiError::unknown_channel)
        }
        ("GET", ["channels", channel, "messages"]) => history(state, channel, query),
        ("POST", ["channels", channel, "messages"]) => create_in_channel(state, channel, body),
        ("PATCH", ["channels", channel, "messages", id]) => edit_in_channel(state, channel, id, body),
        ("DELETE", ["channels", channel, "messages", id]) => delete_in_channel(state, channel, id),
        ("POST", ["channels", channel, "typing"]) => {
            if !state.channels.contains_key(*channel) {
                return Err(ApiError::unknown_channel());
            }
            state.typing.push((channel.to_string(), Instant::now()));
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        ("POST", ["users", "@me", "channels"]) => open_dm(state, body),
        ("POST", ["interactions", id, token, "callback"]) => {
            let with_response = query.split('&').any(|kv| kv == "with_response=true" || kv == "with_response=1");
            callback(state, id, token, body, with_response)
        }
        ("PATCH", ["webhooks", app, token, "messages", "@original"]) => edit_original(state, app, token, body),
        ("DELETE", ["webhooks", app, token, "messages", "@original"]) => delete_original(state, app, token),
        ("POST", ["webhooks", app, token]) => followup(state, app, token, body),
        _ => Err(ApiError::new(404, 0, "404: Not Found")),
    }
}

/// The bot's application, with the limited Message Content intent flag.
fn application() -> Value {
    json!({
        "id": APP_ID, "name": "switchboard-test", "icon": null, "description": "", "flags": 1u64 << 19,
        "bot_public": false, "bot_require_code_grant": false, "verify_key": "0".repeat(64),
        "owner": {"id": "100000000000000001", "username": "owner", "global_name": null, "avatar": null, "discriminator": "0"},
        "bot": State::bot_json(),
    })
}

/// An id the client may send as a string or a number.
fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn put_commands(state: &mut State, app: &str, guild: Option<&str>, body: &Value) -> Answer {
    if app != APP_ID {
        return Err(ApiError::new(403, 50001, "Missing Access"));
    }
    let Some(list) = body.as_array() else { return Err(ApiError::invalid("_root", "must be an array")) };
    let mut out = Vec::new();
    for (i, command) in list.iter().enumerate() {
        let name = command["name"].as_str().unwrap_or_default();
        let valid_name = |n: &str| {
            (1..=32).contains(&n.chars().count())
                && n.chars().all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        if !valid_name(name) {
            return Err(ApiError::invalid(&format!("{i}.name"), "invalid command name"));
        }
        let description = command["description"].as_str().unwrap_or_default().chars().count();
        if !(1..=100).contains(&description) {
            return Err(ApiError::invalid(&format!("{i}.description"), "must be 1 to 100 characters"));
        }
        for option in command["options"].as_array().into_iter().flatten() {
            let option_name = option["name"].as_str().unwrap_or_default();
            if !valid_name(option_name)
                || option["description"].as_str().is_none_or(|d| d.is_empty() || d.chars().count() > 100)
            {
                return Err(ApiError::invalid(&format!("{i}.options"), "invalid option"));
            }
        }
        let mut stored = command.clone();
        stored["id"] = json!(state.next_id());
        stored["application_id"] = json!(APP_ID);
        out.push(stored);
    }
    let key = guild.map_or_else(|| "global".to_string(), str::to_string);
    state.commands.insert(key, Value::Array(out.clone()));
    Ok((StatusCode::OK, Value::Array(out)))
}

fn history(state: &State, channel: &str, query: &str) -> Answer {
    if !state.channels.contains_key(channel) {
        return Err(ApiError::unknown_channel());
    }
    let limit =
        query.split('&').find_map(|kv| kv.strip_prefix("limit=")).and_then(|n| n.parse::<usize>().ok()).unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    let number = |id: &str| id.parse::<u64>().unwrap_or(0);
    let mut listed: Vec<&StoredMessage> =
        state.messages.values().filter(|m| m.channel() == channel && !m.ephemeral).collect();
    listed.sort_by_key(|m| number(m.id()));
    let after = query.split('&').find_map(|kv| kv.strip_prefix("after=")).map(number);
    // With `after`: the oldest `limit` messages after it; else the newest. Newest first either way.
    let mut found: Vec<Value> = match after {
        Some(after) => listed.iter().filter(|m| number(m.id()) > after).take(limit).map(|m| m.json.clone()).collect(),
        None => listed.iter().rev().take(limit).rev().map(|m| m.json.clone()).collect(),
    };
    found.reverse();
    Ok((StatusCode::OK, Value::Array(found)))
}

/// Checks what a create or edit may carry.
fn check_payload(body: &Value, creating: bool) -> Result<(), ApiError> {
    if let Some(content) = body.get("content").filter(|c| !c.is_null()) {
        let Some(text) = content.as_str() else { return Err(ApiError::invalid("content", "must be a string")) };
        if text.chars().count() > MAX_CONTENT {
            return Err(ApiError::invalid("content", "Must be 2000 or fewer in length."));
        }
    }
    if let Some(components) = body.get("components").filter(|c| !c.is_null()) {
        check_components(components)?;
    }
    let has_content = body["content"].as_str().is_some_and(|c| !c.is_empty());
    let has_components = body["components"].as_array().is_some_and(|c| !c.is_empty())
        || body["embeds"].as_array().is_some_and(|e| !e.is_empty());
    if creating && !has_content && !has_components {
        return Err(ApiError::new(400, 50006, "Cannot send an empty message"));
    }
    if let Some(nonce) = body.get("nonce").filter(|n| !n.is_null()) {
        let text = nonce.as_str().map(str::to_string).unwrap_or_else(|| nonce.to_string());
        if text.chars().count() > 25 {
            return Err(ApiError::invalid("nonce", "Must be 25 or fewer in length."));
        }
    }
    Ok(())
}

fn check_components(components: &Value) -> Result<(), ApiError> {
    let Some(rows) = components.as_array() else { return Err(ApiError::invalid("components", "must be an array")) };
    if rows.len() > 5 {
        return Err(ApiError::invalid("components", "at most 5 action rows"));
    }
    for row in rows {
        let buttons = row["components"].as_array();
        if row["type"] != 1 || buttons.is_none_or(|b| b.is_empty() || b.len() > 5) {
            return Err(ApiError::invalid("components", "an action row holds 1 to 5 components"));
        }
        for button in buttons.into_iter().flatten() {
            let style = button["style"].as_u64().unwrap_or(0);
            let custom_id = button["custom_id"].as_str().unwrap_or_default();
            let label = button["label"].as_str().unwrap_or_default();
            if button["type"] == 2 && style == 5 {
                // A link button: a url, no custom_id.
                if button["url"].as_str().is_none_or(|u| !u.starts_with("http")) || button.get("custom_id").is_some() {
                    return Err(ApiError::invalid("components.url", "a link button has a url and no custom_id"));
                }
                continue;
            }
            if button["type"] != 2 || !(1..=4).contains(&style) {
                return Err(ApiError::invalid(
                    "components",
                    "not a button with a custom_id style (selects are not faked)",
                ));
            }
            if custom_id.is_empty() || custom_id.chars().count() > 100 {
                return Err(ApiError::invalid("components.custom_id", "Must be between 1 and 100 in length."));
            }
            if label.chars().count() > 80 {
                return Err(ApiError::invalid("components.label", "Must be 80 or fewer in length."));
            }
        }
    }
    Ok(())
}

/// A bot message's JSON.
fn bot_message(state: &mut State, channel: &ChannelInfo, body: &Value, flags: u64) -> Value {
    let id = state.next_id();
    let mut message = json!({
        "id": id, "channel_id": channel.id, "author": State::bot_json(),
        "content": body["content"].as_str().unwrap_or_default(), "type": 0,
        "timestamp": iso_of(&id), "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false,
        "components": body.get("components").cloned().unwrap_or(json!([])), "flags": flags,
    });
    if let Some(guild) = &channel.guild {
        message["guild_id"] = json!(guild);
    }
    if let Some(nonce) = body.get("nonce").filter(|n| !n.is_null()) {
        message["nonce"] = nonce.clone();
    }
    message
}

fn store(state: &mut State, message: Value, body: &Value, ephemeral: bool) -> Value {
    let id = message["id"].as_str().unwrap_or_default().to_string();
    let stored = StoredMessage {
        versions: vec![message["content"].as_str().unwrap_or_default().to_string()],
        json: message.clone(),
        ephemeral,
        allowed_mentions: vec![body.get("allowed_mentions").cloned()],
    };
    state.messages.insert(id, stored);
    if !ephemeral {
        state.dispatch("MESSAGE_CREATE", message.clone());
    }
    message
}

fn create_in_channel(state: &mut State, channel: &str, body: &Value) -> Answer {
    let Some(info) = state.channels.get(channel).cloned() else { return Err(ApiError::unknown_channel()) };
    check_payload(body, true)?;
    let nonce = body
        .get("nonce")
        .filter(|n| !n.is_null())
        .map(|n| n.as_str().map(str::to_string).unwrap_or_else(|| n.to_string()));
    if let (Some(nonce), true) = (&nonce, body["enforce_nonce"] == true) {
        // Discord remembers an enforced nonce for a few minutes, not for ever.
        if let Some((existing, at)) = state.nonces.get(&(channel.to_string(), nonce.clone())) {
            if let (Some(m), true) = (state.messages.get(existing), at.elapsed() < NONCE_MEMORY) {
                return Ok((StatusCode::OK, m.json.clone()));
            }
        }
    }
    let mut message = bot_message(state, &info, body, 0);
    if let Some(reference) = id_of(&body["message_reference"]["message_id"]) {
        let reference = reference.as_str();
        match state.messages.get(reference).filter(|m| m.channel() == channel && !m.ephemeral) {
            Some(original) => {
                message["type"] = json!(19);
                message["message_reference"] = json!({"message_id": reference, "channel_id": channel});
                message["referenced_message"] = original.json.clone();
            }
            None if body["message_reference"]["fail_if_not_exists"] == false => {}
            None => return Err(ApiError::invalid("message_reference", "Unknown message")),
        }
    }
    let message = store(state, message, body, false);
    if let (Some(nonce), true) = (nonce, body["enforce_nonce"] == true) {
        let id = message["id"].as_str().unwrap_or_default().to_string();
        state.nonces.insert((channel.to_string(), nonce), (id, Instant::now()));
    }
    Ok((StatusCode::OK, message))
}

fn apply_edit(state: &mut State, id: &str, body: &Value) -> Answer {
    check_payload(body, false)?;
    let Some(stored) = state.messages.get_mut(id) else { return Err(ApiError::unknown_message()) };
    if let Some(content) = body["content"].as_str() {
        stored.json["content"] = json!(content);
        stored.versions.push(content.to_string());
    }
    if let Some(components) = body.get("components").filter(|c| !c.is_null()) {
        stored.json["components"] = components.clone();
    }
    let flags = stored.json["flags"].as_u64().unwrap_or(0) & !LOADING;
    stored.json["flags"] = json!(flags);
    stored.json["edited_timestamp"] = json!(iso_of(&state_now_id()));
    stored.allowed_mentions.push(body.get("allowed_mentions").cloned());
    let (json, ephemeral) = (stored.json.clone(), stored.ephemeral);
    if !ephemeral {
        state.dispatch("MESSAGE_UPDATE", json.clone());
    }
    Ok((StatusCode::OK, json))
}

fn state_now_id() -> String {
    ((super::state::now_ms() - super::state::DISCORD_EPOCH_MS) << 22).to_string()
}

fn edit_in_channel(state: &mut State, channel: &str, id: &str, body: &Value) -> Answer {
    match state.messages.get(id) {
        Some(m) if m.channel() == channel && !m.ephemeral => {
            if m.author() != BOT_ID {
                return Err(ApiError::new(403, 50005, "Cannot edit a message authored by another user"));
            }
        }
        _ => return Err(ApiError::unknown_message()),
    }
    apply_edit(state, id, body)
}

fn delete_in_channel(state: &mut State, channel: &str, id: &str) -> Answer {
    match state.messages.get(id) {
        Some(m) if m.channel() == channel && !m.ephemeral => {}
        _ => return Err(ApiError::unknown_message()),
    }
    state.messages.remove(id);
    state.dispatch("MESSAGE_DELETE", json!({"id": id, "channel_id": channel}));
    Ok((StatusCode::NO_CONTENT, Value::Null))
}

fn open_dm(state: &mut State, body: &Value) -> Answer {
    let Some(user) = id_of(&body["recipient_id"]) else { return Err(ApiError::invalid("recipient_id", "required")) };
    let user = user.as_str();
    let existing =
        state.channels.values().find(|c| c.kind == DM && c.recipient.as_deref() == Some(user)).map(|c| c.id.clone());
    let id = match existing {
        Some(id) => id,
        None => {
            state.user_json(user);
            let id = state.next_id();
            let info =
                ChannelInfo { id: id.clone(), kind: DM, guild: None, parent: None, recipient: Some(user.to_string()) };
            state.channels.insert(id.clone(), info);
            id
        }
    };
    Ok((StatusCode::OK, state.channel_json(&id).unwrap_or(Value::Null)))
}

/// The interaction whose token this is, if it still works.
fn by_token<'s>(
    state: &'s mut State,
    app: &str,
    token: &str,
) -> Result<&'s mut super::state::InteractionInfo, ApiError> {
    if app != APP_ID {
        return Err(ApiError::new(404, 10015, "Unknown Webhook"));
    }
    let found = state.interactions.values_mut().find(|i| i.token == token);
    match found {
        Some(i) if i.created.elapsed() <= TOKEN_LIFE => Ok(i),
        Some(_) => Err(ApiError::new(401, 50027, "Invalid Webhook Token")),
        None => Err(ApiError::new(404, 10015, "Unknown Webhook")),
    }
}

fn callback(state: &mut State, id: &str, token: &str, body: &Value, with_response: bool) -> Answer {
    let Some(interaction) = state.interactions.get(id).cloned() else { return Err(ApiError::unknown_interaction()) };
    if interaction.token != token || interaction.created.elapsed() > RESPONSE_DEADLINE {
        return Err(ApiError::unknown_interaction());
    }
    if interaction.response.is_some() {
        return Err(ApiError::new(400, 40060, "Interaction has already been acknowledged."));
    }
    let kind = body["type"].as_u64().unwrap_or(0);
    let component = interaction.kind == 3;
    let data = body.get("data").cloned().unwrap_or(json!({}));
    let Some(channel) = state.channels.get(&interaction.channel).cloned() else {
        return Err(ApiError::unknown_channel());
    };
    let original = match kind {
        4 | 5 => {
            if kind == 4 {
                check_payload(&data, true)?;
            }
            let ephemeral = data["flags"].as_u64().unwrap_or(0) & EPHEMERAL != 0;
            let flags = if kind == 5 { LOADING } else { 0 } | if ephemeral { EPHEMERAL } else { 0 };
            let mut message = bot_message(state, &channel, &data, flags);
            let user = state.user_json(&interaction.user);
            message["interaction_metadata"] = json!({"id": id, "type": interaction.kind, "user": user});
            let message = store(state, message, &data, ephemeral);
            message["id"].as_str().map(str::to_string)
        }
        6 | 7 if component => {
            if kind == 7 {
                let message = interaction.message.clone().unwrap_or_default();
                apply_edit(state, &message, &data)?;
            }
            // A button's original response is the message it sits on.
            interaction.message.clone()
        }
        _ => return Err(ApiError::invalid("type", "not a valid response type for this interaction")),
    };
    let stored = state.interactions.get_mut(id).expect("checked above");
    stored.response = Some(kind);
    stored.original = original.clone();
    if !with_response {
        return Ok((StatusCode::NO_CONTENT, Value::Null));
    }
    // `?with_response=true`: the interaction callback response object.
    let message = original.as_deref().and_then(|m| state.messages.get(m));
    let flags = message.and_then(|m| m.json["flags"].as_u64()).unwrap_or(0);
    let mut resource = json!({"type": kind});
    if let (Some(m), true) = (message, matches!(kind, 4 | 7)) {
        resource["message"] = m.json.clone();
    }
    let answer = json!({
        "interaction": {"id": id, "type": interaction.kind, "activity_instance_id": null,
            "response_message_id": original, "response_message_loading": flags & LOADING != 0,
            "response_message_ephemeral": flags & EPHEMERAL != 0},
        "resource": resource,
    });
    Ok((StatusCode::OK, answer))
}

fn edit_original(state: &mut State, app: &str, token: &str, body: &Value) -> Answer {
    let interaction = by_token(state, app, token)?;
    let Some(original) = interaction.original.clone() else { return Err(ApiError::unknown_message()) };
    apply_edit(state, &original, body)
}

fn delete_original(state: &mut State, app: &str, token: &str) -> Answer {
    let interaction = by_token(state, app, token)?;
    let Some(original) = interaction.original.take() else { return Err(ApiError::unknown_message()) };
    match state.messages.remove(&original) {
        Some(m) if !m.ephemeral => {
            let channel = m.channel().to_string();
            state.dispatch("MESSAGE_DELETE", json!({"id": original, "channel_id": channel}));
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        Some(_) => Ok((StatusCode::NO_CONTENT, Value::Null)),
        None => Err(ApiError::unknown_message()),
    }
}

fn followup(state: &mut State, app: &str, token: &str, body: &Value) -> Answer {
    let interaction = by_token(state, app, token)?.clone();
    if interaction.response.is_none() {
        return Err(ApiError::unknown_webhook_message());
    }
    check_payload(body, true)?;
    let Some(channel) = state.channels.get(&interaction.channel).cloned() else {
        return Err(ApiError::unknown_channel());
    };
    let ephemeral = body["flags"].as_u64().unwrap_or(0) & EPHEMERAL != 0;
    let message = bot_message(state, &channel, body, if ephemeral { EPHEMERAL } else { 0 });
    let message = store(state, message, body, ephemeral);
    if let Some(i) = state.interactions.get_mut(&interaction.id) {
        i.followups.push(message["id"].as_str().unwrap_or_default().to_string());
    }
    Ok((StatusCode::OK, message))
}

impl ApiError {
    fn unknown_webhook_message() -> ApiError {
        ApiError::new(404, 10015, "Unknown Webhook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_hide_ids_and_tokens() {
        assert_eq!(route_key(&Method::POST, "/api/v10/channels/123/messages"), "POST /channels/*/messages");
        assert_eq!(
            route_key(&Method::POST, "/api/v10/interactions/55/aW50ZXJhY3Rpb246/callback"),
            "POST /interactions/*/*/callback"
        );
        assert_eq!(
            route_key(&Method::PATCH, "/api/v10/webhooks/9/tok-en/messages/@original"),
            "PATCH /webhooks/*/*/messages/@original"
        );
    }
}
