//! The fake's Web API: `POST /api/{method}` with a bearer token and a JSON or
//! form body, answering `{"ok": …}` as Slack does, strict where Slack is
//! (lengths, block shapes, per-message update rate, unknown messages), and
//! the response URLs of slash commands and presses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::state::{Call, Shared, SlackMessage, State, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, TEAM};

/// Slack refuses a message text longer than this.
const MAX_TEXT: usize = 40_000;
/// A section's text.
const MAX_SECTION: usize = 3_000;
const MAX_BLOCKS: usize = 50;
/// One update of a message per this long; more are rate limited.
const UPDATE_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

type Answer = Result<Value, (StatusCode, Value, Option<u64>)>;

fn refuse(error: &str) -> (StatusCode, Value, Option<u64>) {
    (StatusCode::OK, json!({"ok": false, "error": error}), None)
}

/// Whether the body is a form (else JSON).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
}

/// The body as JSON, whether sent as JSON or as a form (whose `blocks` and
/// similar fields hold JSON text).
fn body_of(headers: &HeaderMap, body: &[u8]) -> Value {
    if !is_form(headers) {
        return serde_json::from_slice(body).unwrap_or(json!({}));
    }
    let mut out = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        let value = match k.as_ref() {
            "blocks" | "prompts" | "attachments" => serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned())),
            _ => Value::String(v.into_owned()),
        };
        out.insert(k.into_owned(), value);
    }
    Value::Object(out)
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let json_body = !is_form(&headers);
    let mut body = body_of(&headers, &body);
    // Arguments may come in the query string too (slack_sdk's aiohttp client sends them so).
    if let (Some(query), Some(object)) = (uri.query(), body.as_object_mut()) {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            object.entry(k.into_owned()).or_insert(Value::String(v.into_owned()));
        }
    }
    let path = uri.path().to_string();
    let answer = {
        let mut state = shared.lock();
        if let Some(id) = path.strip_prefix("/response/") {
            state.calls.push(Call { method: "response_url".into(), body: body.clone(), at: Instant::now() });
            respond_url(&mut state, id, &body)
        } else if let Some(method) = path.strip_prefix("/api/") {
            let method = method.to_string();
            state.calls.push(Call { method: method.clone(), body: body.clone(), at: Instant::now() });
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            // A form body may carry the token (a legacy way Slack still takes); a
            // JSON body never does: it needs the header.
            let token = token.or_else(|| body["token"].as_str().filter(|_| !json_body).map(str::to_string));
            call(&mut state, &method, token.as_deref(), &body)
        } else {
            Err((StatusCode::NOT_FOUND, json!({"ok": false, "error": "not_found"}), None))
        }
    };
    shared.wake.notify_waiters();
    let scopes = (path == "/api/auth.test").then(|| shared.lock().scopes.clone());
    match answer {
        Ok(value) => {
            let mut response = axum::Json(value).into_response();
            if let Some(scopes) = scopes.and_then(|s| s.parse().ok()) {
                response.headers_mut().insert("x-oauth-scopes", scopes);
            }
            response
        }
        Err((status, value, retry_after)) => {
            let mut response = (status, axum::Json(value)).into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert("retry-after", secs.to_string().parse().expect("a number"));
            }
            response
        }
    }
}

fn call(state: &mut State, method: &str, token: Option<&str>, body: &Value) -> Answer {
    let needed = if method == "apps.connections.open" { APP_TOKEN } else { BOT_TOKEN };
    match token {
        None => return Err(refuse("not_authed")),
        Some(t) if t == needed => {}
        Some(t) if t == APP_TOKEN || t == BOT_TOKEN => return Err(refuse("not_allowed_token_type")),
        Some(_) => return Err(refuse("invalid_auth")),
    }
    if let Some(failure) = state.take_failure(method) {
        let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::OK);
        let error = failure.error.unwrap_or_else(|| {
            if failure.status == 429 {
                "ratelimited".into()
            } else {
                "internal_error".into()
            }
        });
        return Err((status, json!({"ok": false, "error": error}), failure.retry_after));
    }
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
    match method {
        "auth.test" => Ok(
            json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "switchboard", "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false}),
        ),
        "apps.connections.open" => Ok(json!({"ok": true, "url": format!("{}?ticket=fake", state.socket_url)})),
        "chat.postMessage" => post_message(state, body),
        "chat.update" => update(state, body),
        "chat.postEphemeral" => {
            let (channel, user) = (text("channel"), text("user"));
            if channel.is_empty() || user.is_empty() {
                return Err(refuse("invalid_arguments"));
            }
            check_text(body)?;
            let ts = state.next_ts();
            let message = SlackMessage {
                channel,
                ts: ts.clone(),
                thread_ts: body["thread_ts"].as_str().map(str::to_string),
                user: None,
                text: text("text"),
                blocks: body["blocks"].clone(),
                ephemeral_for: Some(user),
                versions: vec![text("text")],
                updated: Vec::new(),
                subtype: None,
            };
            state.messages.insert(ts.clone(), message);
            Ok(json!({"ok": true, "message_ts": ts}))
        }
        "users.info" => {
            let user = text("user");
            let Some(name) = state.users.get(&user).cloned() else { return Err(refuse("user_not_found")) };
            let handle = name.to_lowercase().replace(' ', ".");
            Ok(
                json!({"ok": true, "user": {"id": user, "team_id": TEAM, "name": handle, "is_bot": false, "deleted": false,
                "real_name": name, "tz": "Europe/London", "tz_offset": 0,
                "profile": {"display_name": name, "real_name": name}}}),
            )
        }
        "conversations.replies" => {
            let (channel, ts) = (text("channel"), text("ts"));
            let mut messages: Vec<Value> = state
                .messages
                .values()
                .filter(|m| {
                    m.channel == channel
                        && m.ephemeral_for.is_none()
                        && (m.ts == ts || m.thread_ts.as_deref() == Some(&ts))
                })
                .map(SlackMessage::json)
                .collect();
            if messages.is_empty() {
                return Err(refuse("thread_not_found"));
            }
            // The thread's first message says how many replies it has.
            let replies = messages.len() - 1;
            let latest = messages.last().and_then(|m| m["ts"].as_str().map(str::to_string));
            if let Some(root) = messages.first_mut().filter(|_| replies > 0) {
                root["reply_count"] = json!(replies);
                root["latest_reply"] = json!(latest);
                root["thread_ts"] = json!(ts);
            }
            Ok(json!({"ok": true, "messages": messages, "has_more": false}))
        }
        "conversations.info" => {
            let channel = text("channel");
            // The app sees its own DMs; other people's are not found.
            match state.dms.iter().find(|(_, c)| **c == channel) {
                Some((user, _)) => Ok(json!({"ok": true, "channel": {"id": channel, "is_im": true, "user": user}})),
                None if state.channels.contains(&channel) => {
                    Ok(json!({"ok": true, "channel": {"id": channel, "is_im": false, "is_channel": true}}))
                }
                None => Err(refuse("channel_not_found")),
            }
        }
        "conversations.open" => {
            let users = text("users");
            match users.split(',').filter(|u| !u.is_empty()).count() {
                0 => Err(refuse("users_list_not_supplied")),
                1 => Ok(json!({"ok": true, "channel": {"id": state.dm(&users)}})),
                _ => Ok(json!({"ok": true, "channel": {"id": state.next_id("G"), "is_mpim": true}})),
            }
        }
        "assistant.threads.setStatus" | "assistant.threads.setSuggestedPrompts" | "assistant.threads.setTitle" => {
            if text("channel_id").is_empty() || text("thread_ts").is_empty() {
                return Err(refuse("invalid_arguments"));
            }
            state.assistant.push((method.to_string(), body.clone()));
            Ok(json!({"ok": true}))
        }
        _ => Err(refuse("unknown_method")),
    }
}

fn check_text(body: &Value) -> Result<(), (StatusCode, Value, Option<u64>)> {
    let text = body["text"].as_str().unwrap_or_default();
    if text.chars().count() > MAX_TEXT {
        return Err(refuse("msg_too_long"));
    }
    if let Some(blocks) = body.get("blocks").filter(|b| !b.is_null()) {
        let Some(blocks) = blocks.as_array() else { return Err(refuse("invalid_blocks")) };
        if blocks.len() > MAX_BLOCKS {
            return Err(refuse("invalid_blocks"));
        }
        for block in blocks {
            let section_text = block["text"]["text"].as_str();
            let fields = block["fields"].as_array();
            match block["type"].as_str() {
                Some("section") if section_text.is_some_and(|t| t.chars().count() <= MAX_SECTION) => {}
                Some("section") if section_text.is_none() && fields.is_some_and(|f| !f.is_empty() && f.len() <= 10) => {
                }
                Some("header" | "divider" | "context" | "image" | "rich_text") => {}
                Some("actions") => {
                    let elements = block["elements"].as_array().cloned().unwrap_or_default();
                    if elements.is_empty() || elements.len() > 25 {
                        return Err(refuse("invalid_blocks"));
                    }
                    let mut ids = std::collections::HashSet::new();
                    for e in elements {
                        let id_ok = e["action_id"]
                            .as_str()
                            .is_none_or(|a| !a.is_empty() && a.len() <= 255 && ids.insert(a.to_string()));
                        let button_ok = e["type"] != "button"
                            || (e["text"]["type"] == "plain_text"
                                && e["text"]["text"]
                                    .as_str()
                                    .is_some_and(|t| !t.is_empty() && t.chars().count() <= 75)
                                && e["value"].as_str().is_none_or(|v| v.len() <= 2000)
                                && e["style"].as_str().is_none_or(|s| s == "primary" || s == "danger"));
                        if !id_ok || !button_ok {
                            return Err(refuse("invalid_blocks"));
                        }
                    }
                }
                _ => return Err(refuse("invalid_blocks")),
            }
        }
    }
    if text.is_empty() && body["blocks"].as_array().is_none_or(|b| b.is_empty()) {
        return Err(refuse("no_text"));
    }
    Ok(())
}

fn post_message(state: &mut State, body: &Value) -> Answer {
    let mut channel = body["channel"].as_str().unwrap_or_default().to_string();
    if channel.starts_with('U') {
        // A user id: their DM with the app.
        channel = state.dm(&channel);
    }
    if !state.knows_channel(&channel) {
        return Err(refuse("channel_not_found"));
    }
    check_text(body)?;
    let thread_ts = body["thread_ts"].as_str().map(str::to_string);
    if let Some(thread) = &thread_ts {
        if state.messages.get(thread).is_none_or(|m| m.channel != channel) {
            return Err(refuse("thread_not_found"));
        }
    }
    let ts = state.next_ts();
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let message = SlackMessage {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts: thread_ts.clone(),
        user: None,
        text: text.clone(),
        blocks: body["blocks"].clone(),
        ephemeral_for: None,
        versions: vec![text],
        updated: Vec::new(),
        subtype: None,
    };
    let json = message.json();
    state.messages.insert(ts.clone(), message);
    // The app's own message comes back as an event (with its bot_id).
    let mut event = json.clone();
    event["channel"] = json!(channel);
    event["channel_type"] = json!(if channel.starts_with('D') { "im" } else { "channel" });
    event["event_ts"] = json!(ts);
    state.event(event);
    Ok(json!({"ok": true, "channel": channel, "ts": ts, "message": json}))
}

fn update(state: &mut State, body: &Value) -> Answer {
    let (channel, ts) = (body["channel"].as_str().unwrap_or_default(), body["ts"].as_str().unwrap_or_default());
    let Some(message) = state.messages.get_mut(ts).filter(|m| m.channel == channel && m.ephemeral_for.is_none()) else {
        return Err(refuse("message_not_found"));
    };
    if message.user.is_some() {
        return Err(refuse("cant_update_message"));
    }
    if message.updated.last().is_some_and(|at| at.elapsed() < UPDATE_EVERY) {
        return Err((StatusCode::TOO_MANY_REQUESTS, json!({"ok": false, "error": "ratelimited"}), Some(1)));
    }
    check_text(body)?;
    let text = body["text"].as_str().unwrap_or_default().to_string();
    message.text = text.clone();
    message.versions.push(text);
    if !body["blocks"].is_null() {
        message.blocks = body["blocks"].clone();
    }
    message.updated.push(Instant::now());
    let json = message.json();
    Ok(json!({"ok": true, "channel": channel, "ts": ts, "text": message.text, "message": json}))
}

/// A slash command's or a press's response URL: posts into the channel (or
/// privately), up to five times.
fn respond_url(state: &mut State, id: &str, body: &Value) -> Answer {
    let Some(envelope) = state
        .envelopes
        .iter()
        .find(|e| e.payload["response_url"].as_str().is_some_and(|u| u.ends_with(&format!("/response/{id}"))))
        .cloned()
    else {
        return Err((StatusCode::NOT_FOUND, json!({"ok": false, "error": "expired_url"}), None));
    };
    let used = state.calls.iter().filter(|c| c.method == "response_url" && c.body["__id"] == id).count();
    if used >= 5 {
        return Err((StatusCode::NOT_FOUND, json!({"ok": false, "error": "used_url"}), None));
    }
    if let Some(call) = state.calls.last_mut() {
        call.body["__id"] = json!(id);
    }
    let payload = &envelope.payload;
    let channel = payload["channel_id"].as_str().or(payload["channel"]["id"].as_str()).unwrap_or_default().to_string();
    let user = payload["user_id"].as_str().or(payload["user"]["id"].as_str()).unwrap_or_default().to_string();
    // A press's response URL may replace or delete the message the button is on.
    let original = payload["container"]["message_ts"].as_str().map(str::to_string);
    let truthy = |key: &str| body[key] == true || body[key] == "true";
    if let (Some(ts), true) = (&original, truthy("delete_original")) {
        state.messages.remove(ts);
        return Ok(json!({"ok": true}));
    }
    if let (Some(ts), true) = (&original, truthy("replace_original")) {
        let text = body["text"].as_str().unwrap_or_default().to_string();
        if let Some(m) = state.messages.get_mut(ts) {
            m.text = text.clone();
            m.versions.push(text);
            m.blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
        }
        return Ok(json!({"ok": true}));
    }
    let ephemeral = body["response_type"].as_str() != Some("in_channel");
    let ts = state.next_ts();
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let message = SlackMessage {
        channel,
        ts: ts.clone(),
        thread_ts: None,
        user: None,
        text: text.clone(),
        blocks: Value::Null,
        ephemeral_for: ephemeral.then_some(user),
        versions: vec![text],
        updated: Vec::new(),
        subtype: None,
    };
    state.messages.insert(ts, message);
    Ok(json!({"ok": true}))
}
