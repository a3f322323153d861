//! HTTP routes of the fake LLM: chat completions (streaming or not) and model listing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use serde_json::{json, Value};

use super::reply::{split_into, Fallback, Gate, Quirks, Reply};
use super::request::RecordedRequest;
use super::wire::{self, Completion, Meta};
use super::{Shared, Turn, DEFAULT_MODEL};

/// Requests may carry base64 images; be generous.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/props", get(props))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn chat_completions(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let (request, problem) = RecordedRequest::new(uri.path().to_owned(), header_map(&headers), raw);
    if let Some(message) = problem {
        shared.record(request);
        return json_error(StatusCode::BAD_REQUEST, &message);
    }
    if let Some(refusal) = quirk_refusal(shared.quirks(), &request) {
        // Refused before any reply is taken: the script waits for the next request.
        shared.record(request);
        return refusal;
    }
    let request = Arc::new(request);
    let turn = shared.record_and_pop(Arc::clone(&request));
    answer(turn, &request).await
}

/// Whether the request offers the model any tools.
fn has_tools(request: &RecordedRequest) -> bool {
    request.body()["tools"].as_array().is_some_and(|t| !t.is_empty())
}

/// What a quirky server answers instead of a reply, if anything.
fn quirk_refusal(quirks: Quirks, request: &RecordedRequest) -> Option<Response> {
    let messages = request.message_list();
    if quirks.null_content_is_500 && messages.iter().any(|m| m["role"] == "assistant" && m["content"].is_null()) {
        let body = json!({"detail": "1 validation error for ChatCompletionRequestAssistantMessage\ncontent\n  Input should be a valid string"});
        return Some((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
    }
    if quirks.no_streamed_tool_calls
        && request.is_stream()
        && has_tools(request)
        && !request.body()["tool_choice"].is_null()
    {
        return Some(sse_response(Vec::new(), Duration::ZERO, Vec::new()));
    }
    None
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let data: Vec<Value> = shared
        .models()
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "fake"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// llama.cpp's server properties, when a context size is set.
async fn props(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    match shared.context_size() {
        Some(n_ctx) => Json(json!({"default_generation_settings": {"n_ctx": n_ctx}, "total_slots": 1})).into_response(),
        None => not_found(uri).await,
    }
}

async fn not_found(uri: Uri) -> Response {
    let message = format!("fake llm: no route for {}", uri.path());
    json_error(StatusCode::NOT_FOUND, &message)
}

/// Lowercase header names; repeated headers joined with ", ".
fn header_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

/// How the response for one request must be delivered.
struct Delivery {
    stream: bool,
    chunk_delay: Duration,
    model: String,
    prompt_chars: usize,
    no_usage: bool,
    /// Where the stream stops until a gate opens: the index of the first event
    /// held, and the gate.
    holds: Vec<(usize, Gate)>,
}

async fn answer(turn: Turn, request: &RecordedRequest) -> Response {
    let delivery = Delivery {
        stream: request.is_stream(),
        chunk_delay: turn.chunk_delay,
        model: request.model().unwrap_or(DEFAULT_MODEL).to_owned(),
        prompt_chars: request.all_text().chars().count(),
        no_usage: turn.quirks.no_usage,
        holds: Vec::new(),
    };
    let tools_ignored =
        turn.quirks.tools_need_tool_choice && has_tools(request) && request.body()["tool_choice"].is_null();
    match turn.reply {
        // The server never showed the model its tools.
        Some(Reply::ToolCalls { .. }) if tools_ignored => respond(Reply::text("I have no tools here."), delivery).await,
        Some(reply) => respond(reply, delivery).await,
        None => match turn.fallback {
            Fallback::Error => json_error(StatusCode::INTERNAL_SERVER_ERROR, "fake llm: no scripted reply"),
            Fallback::Echo => {
                let echo = format!("echo: {}", request.last_user_text());
                respond(Reply::text(&echo), delivery).await
            }
            Fallback::Agent => {
                let said = request.unanswered_user_text();
                let after_tool = request.message_list().last().is_some_and(|m| m["role"] == "tool");
                let asked = request.last_user_text();
                if let Some(call) = asked.strip_prefix("CALL ") {
                    return respond(call_reply(request, call, after_tool, said == asked), delivery).await;
                }
                if asked == "RECALL" {
                    let mut earlier: Vec<String> = request
                        .message_list()
                        .iter()
                        .filter(|m| m["role"] == "user")
                        .map(|m| super::request::content_text(&m["content"]))
                        .collect();
                    earlier.pop();
                    return respond(Reply::text(&format!("you said: {}", earlier.join(" | "))), delivery).await;
                }
                if asked == "MEMORY" {
                    return respond(Reply::text(&format!("memory: {}", request.system_prompt())), delivery).await;
                }
                let reply = match asked.strip_prefix("RUN ") {
                    Some(command) if after_tool => Reply::text(&format!("ran: {command}")),
                    Some(command) if said == asked => {
                        Reply::tool_call("Bash", serde_json::json!({ "command": command }))
                    }
                    _ if said.contains("long") => Reply::text(&long_echo(&said)),
                    _ if said.contains("slow") => Reply::Text { chunks: split_into(&format!("echo: {said}"), 10) },
                    _ => Reply::text(&format!("echo: {said}")),
                };
                respond(reply, delivery).await
            }
        },
    }
}

/// `CALL <tool> <json arguments>`: a call of that tool when the request offers
/// it; once its result is back, `called <tool>: <result>`.
fn call_reply(request: &RecordedRequest, call: &str, after_tool: bool, fresh: bool) -> Reply {
    let (tool, arguments) = call.split_once(' ').unwrap_or((call, "{}"));
    if after_tool {
        let result = request.tool_results().last().map(|(_, text)| text.clone()).unwrap_or_default();
        return Reply::text(&format!("called {tool}: {result}"));
    }
    if !fresh {
        return Reply::text(&format!("echo: {}", request.unanswered_user_text()));
    }
    if !request.tool_names().iter().any(|t| t == tool) {
        return Reply::text(&format!("I have no tool named {tool}."));
    }
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(args) => Reply::tool_call(tool, args),
        Err(_) => Reply::text("Those arguments are not JSON."),
    }
}

/// `echo: <said>`, about 5,000 characters of filler words, then `end: <said>`:
/// longer than one Telegram message.
fn long_echo(said: &str) -> String {
    let filler: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    format!("echo: {said} {} end: {said}", filler.join(" "))
}

/// Boxed because `Reply::Delay` nests replies.
fn respond(reply: Reply, delivery: Delivery) -> BoxFuture<'static, Response> {
    async move {
        match reply {
            Reply::Text { chunks } => {
                let completion = Completion { text: chunks, ..Completion::default() };
                complete(&completion, &delivery)
            }
            Reply::ToolCalls { text, calls } => {
                let completion = Completion { text, calls, ..Completion::default() };
                complete(&completion, &delivery)
            }
            Reply::Reasoning { field, reasoning, text } => {
                let completion = Completion { reasoning_field: Some(field), reasoning, text, ..Completion::default() };
                complete(&completion, &delivery)
            }
            Reply::HttpError { status, retry_after, body } => http_error(status, retry_after, body),
            Reply::Malformed { raw } => sse_response(vec![raw], Duration::ZERO, Vec::new()),
            Reply::Delay { delay, then } => {
                tokio::time::sleep(delay).await;
                respond(*then, delivery).await
            }
            Reply::Gated { gate, then } => {
                gate.passed().await;
                respond(*then, delivery).await
            }
            Reply::Held { deltas, gate, then } => {
                let mut delivery = delivery;
                // Event 0 is the role delta.
                delivery.holds.push((deltas + 1, gate));
                respond(*then, delivery).await
            }
            Reply::Hang => std::future::pending().await,
        }
    }
    .boxed()
}

fn complete(completion: &Completion, delivery: &Delivery) -> Response {
    let meta = Meta::new(&delivery.model, delivery.prompt_chars);
    if delivery.stream {
        let mut events = wire::sse_events(&meta, completion);
        if delivery.no_usage {
            events.retain(|e| !e.contains("\"usage\""));
        }
        sse_response(events, delivery.chunk_delay, delivery.holds.clone())
    } else {
        let mut object = wire::completion_object(&meta, completion);
        if delivery.no_usage {
            if let Some(fields) = object.as_object_mut() {
                fields.remove("usage");
            }
        }
        Json(object).into_response()
    }
}

/// `text/event-stream` body sending `events` one by one, `delay` apart, each
/// event named in `holds` only once its gate is open.
fn sse_response(events: Vec<String>, delay: Duration, holds: Vec<(usize, Gate)>) -> Response {
    let steps = events.into_iter().enumerate().map(move |(i, event)| {
        let gates: Vec<Gate> = holds.iter().filter(|(at, _)| *at == i).map(|(_, gate)| gate.clone()).collect();
        (i, event, gates)
    });
    let body = stream::iter(steps).then(move |(i, event, gates)| async move {
        for gate in gates {
            gate.passed().await;
        }
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(event)
    });
    let headers = [(CONTENT_TYPE, "text/event-stream"), (CACHE_CONTROL, "no-cache")];
    (headers, Body::from_stream(body)).into_response()
}

fn http_error(status: u16, retry_after: Option<u64>, body: String) -> Response {
    let Ok(code) = StatusCode::from_u16(status) else {
        let message = format!("fake llm: scripted status {status} is not a valid HTTP status");
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, &message);
    };
    let mut response = (code, [(CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// `{"error":{"message":...}}` with the given status.
fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}
