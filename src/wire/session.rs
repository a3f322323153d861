//! One SDK session on the wire (`letta-code-wire.md` §3–§6): `system/init` first,
//! then one turn per `user` line with exactly one `result` each, while control
//! requests are answered as they come, during a turn too (`list_messages` from
//! the store, `interrupt` at once). One task reads, one writes whole lines.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::letta::{self, Query};
use super::start::Started;
use super::Engine;
use crate::agent::{ErrorKind, SdkMessage, StopReason, StreamDelta, TurnResult, UserInput};
use crate::store::ApprovalState;

/// A line longer than this (a huge image) is refused, not buffered.
const MAX_LINE: u64 = 32 * 1024 * 1024;

/// Runs the session until its input ends (after finishing the turns it asked
/// for) or its output is gone (then the running turn is cancelled).
pub async fn run<R, W>(engine: &Engine, started: Started, input: R, output: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Started { mut session, init, out, out_rx, waiting, model, tools, partial, external, .. } = started;
    let session_id = session.session_id().to_string();
    let gone = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(write_lines(out_rx, output, session_id.clone(), gone.clone()));
    let _ = out.send(init);
    let mut lines = read_lines(input);
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut turn: Option<TurnState> = None;
    let mut input_open = true;
    let context = Context {
        engine: engine.clone(),
        out: out.clone(),
        agent_id: session.agent_id().to_string(),
        conversation_id: session.conversation_id().to_string(),
        model,
        tools,
        partial,
        recorded: watch::Sender::new(true),
    };
    loop {
        if turn.is_none() {
            match queue.pop_front() {
                Some(Queued::Turn(input)) => {
                    // Questions can be answered while the SDK is still there.
                    if input_open {
                        waiting.reopen();
                    }
                    let state = TurnState::new();
                    match session.send_input(input) {
                        Ok(()) => {
                            context.recorded.send_replace(false);
                            turn = Some(state);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "an SDK turn could not start");
                            for line in state.refused(&context, "the turn could not start") {
                                let _ = out.send(line);
                            }
                        }
                    }
                    continue;
                }
                Some(Queued::Rejected(problem)) => {
                    for line in TurnState::new().refused(&context, &problem) {
                        let _ = out.send(line);
                    }
                    continue;
                }
                None => {}
            }
            if !input_open {
                break;
            }
        }
        tokio::select! {
            message = session.next(), if turn.is_some() => {
                let Some(message) = message else {
                    // The runner ended without a result: say so, once.
                    let state = turn.take().expect("a turn runs");
                    context.recorded.send_replace(true);
                    let _ = out.send(state.lost_result(&context));
                    continue;
                };
                let state = turn.as_mut().expect("a turn runs");
                if !matches!(message, SdkMessage::Init { .. }) {
                    context.recorded.send_replace(true);
                }
                for line in state.lines(&context, message, session.conversation_id()) {
                    let _ = out.send(line);
                }
                if state.finished {
                    turn = None;
                }
            }
            line = lines.recv(), if input_open => match line {
                None => {
                    // Nobody can answer a question any more: a waiting tool is
                    // refused and the queued turns finish without asking.
                    input_open = false;
                    waiting.abandon_all();
                }
                Some(Err(problem)) => stray(&out, turn.is_some(), &problem),
                Some(Ok(line)) => match line["type"].as_str() {
                    Some("user") => match user_input(&line) {
                        Ok(input) => queue.push_back(Queued::Turn(input)),
                        // Still one result for the line, in its place.
                        Err(problem) => queue.push_back(Queued::Rejected(problem)),
                    },
                    Some("control_request") => {
                        let id = line["request_id"].clone();
                        let request = &line["request"];
                        match request["subtype"].as_str().unwrap_or("") {
                            // Inline, so the next turn already offers them.
                            "register_external_tools" => {
                                let registered = external.register(&request["tools"]);
                                let _ = out.send(success(&id, Some(json!({"registered": registered}))));
                            }
                            "interrupt" => {
                                if turn.is_some() {
                                    session.canceller().cancel();
                                    waiting.abandon_all();
                                }
                                let _ = out.send(success(&id, None));
                            }
                            subtype => context.answer(id, subtype, request.clone()),
                        }
                    }
                    Some("control_response") => {
                        let response = &line["response"];
                        let id = response["request_id"].as_str().unwrap_or("");
                        if !waiting.answer(id, response.clone()) {
                            tracing::debug!("an SDK answer nobody waits for was dropped");
                        }
                    }
                    other => {
                        let kind = other.map_or_else(|| line["type"].to_string(), str::to_string);
                        stray(&out, turn.is_some(), &format!("Unknown message type: {kind}"));
                    }
                },
            },
            _ = gone.cancelled() => {
                session.canceller().cancel();
                waiting.abandon_all();
                break;
            }
        }
    }
    // Tasks still answering control requests may hold senders: end the writer
    // with its marker rather than waiting for them.
    drop(session);
    let _ = out.send(Value::Null);
    let _ = writer.await;
}

/// A user line waiting for its turn.
enum Queued {
    Turn(UserInput),
    /// A line that cannot be a turn; it still gets its `result`.
    Rejected(String),
}

/// Reports a line that is not a user line or a control message, between turns
/// only: during a turn the SDK would take it for the turn's own error.
fn stray(out: &mpsc::UnboundedSender<Value>, turn_running: bool, problem: &str) {
    if turn_running {
        tracing::debug!(problem, "a stray SDK line during a turn was dropped");
    } else {
        let _ = out.send(json!({"type": "error", "message": problem, "stop_reason": "error"}));
    }
}

/// What control requests need, shared with the tasks that answer them.
struct Context {
    engine: Engine,
    out: mpsc::UnboundedSender<Value>,
    agent_id: String,
    conversation_id: String,
    model: String,
    tools: Vec<String>,
    /// `--include-partial-messages`.
    partial: bool,
    /// False from a turn's start until its user message is surely in the
    /// transcript (it has said something, or ended).
    recorded: watch::Sender<bool>,
}

/// Waits (a little at most) until the running turn's message is in the
/// transcript, so a listing made during the turn shows it.
async fn recorded(turn: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), turn.wait_for(|r| *r)).await;
}

impl Context {
    /// Answers a control request other than `interrupt` on its own task, so a
    /// running turn never holds it up.
    fn answer(&self, id: Value, subtype: &str, request: Value) {
        let (engine, out) = (self.engine.clone(), self.out.clone());
        let (agent_id, conversation_id) = (self.agent_id.clone(), self.conversation_id.clone());
        let (model, tools) = (self.model.clone(), self.tools.clone());
        let mut started_turn = self.recorded.subscribe();
        let subtype = subtype.to_string();
        tokio::spawn(async move {
            let answer = match subtype.as_str() {
                "initialize" => Ok(json!({
                    "agent_id": agent_id, "model": model, "tools": tools, "memfs_enabled": false,
                    "skill_sources": [], "system_info_reminder_enabled": true,
                })),
                "list_messages" => {
                    recorded(&mut started_turn).await;
                    let conversation = request["conversation_id"].as_str().unwrap_or(&conversation_id).to_string();
                    list(&engine, &conversation, &request).await.map(|page| {
                        json!({"messages": page.messages, "next_before": page.next_before, "has_more": page.has_more})
                    })
                }
                "bootstrap_session_state" => {
                    recorded(&mut started_turn).await;
                    bootstrap(&engine, &conversation_id, &request).await.map(|(page, pending)| {
                        json!({
                            "agent_id": agent_id, "conversation_id": conversation_id, "model": model, "tools": tools,
                            "memfs_enabled": false, "messages": page.messages, "next_before": page.next_before,
                            "has_more": page.has_more, "has_pending_approval": pending,
                        })
                    })
                }
                "recover_pending_approvals" => {
                    let conversation = request["conversation_id"].as_str().unwrap_or(&conversation_id).to_string();
                    engine
                        .backend
                        .cancel_approvals(&conversation, None, "recovered by the SDK: the process that asked is gone")
                        .await
                        .map(|cancelled| {
                            json!({"recovered": true, "pending_approval": false, "approvals_processed": cancelled.len()})
                        })
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("Unknown control request subtype: {other}")),
            };
            let line = match answer {
                Ok(body) => success(&id, Some(body)),
                Err(error) => {
                    json!({"type": "control_response", "response": {"subtype": "error", "request_id": id, "error": error}})
                }
            };
            let _ = out.send(line);
        });
    }
}

async fn list(engine: &Engine, conversation_id: &str, request: &Value) -> Result<letta::Page, String> {
    let query = Query::from_request(request)?;
    let entries = engine.backend.export_conversation(conversation_id).await.map_err(|e| e.to_string())?;
    letta::page(letta::messages(&entries), &query)
}

async fn bootstrap(engine: &Engine, conversation_id: &str, request: &Value) -> Result<(letta::Page, bool), String> {
    let page = list(engine, conversation_id, request).await?;
    let approvals = engine.backend.approvals().await.map_err(|e| e.to_string())?;
    let pending = approvals.iter().any(|a| a.conversation_id == conversation_id && a.state == ApprovalState::Pending);
    Ok((page, pending))
}

fn success(id: &Value, body: Option<Value>) -> Value {
    let mut response = json!({"subtype": "success", "request_id": id});
    if let Some(body) = body {
        response["response"] = body;
    }
    json!({"type": "control_response", "response": response})
}

/// A `user` line's message as a turn's input: its text, with image parts named
/// (the model client sends text only).
fn user_input(line: &Value) -> Result<UserInput, String> {
    let content = &line["message"]["content"];
    let text = match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => texts.push(part["text"].as_str().unwrap_or("").to_string()),
                    Some("image") => {
                        let kind = part["source"]["media_type"].as_str().unwrap_or("image");
                        texts.push(format!(
                            "[an image ({kind}) was attached; this model connection receives text only]"
                        ));
                    }
                    _ => return Err("a user message part must be text or an image".into()),
                }
            }
            texts.join("\n")
        }
        _ => return Err("a user message needs message.content (a string or a list of parts)".into()),
    };
    if text.trim().is_empty() {
        return Err("the user message is empty".into());
    }
    Ok(UserInput { text, id: None })
}

/// One turn's progress on the wire.
struct TurnState {
    run_id: String,
    started: Instant,
    /// The id the current assistant message's deltas share.
    stream_id: String,
    last_tool_text: Option<String>,
    finished: bool,
    /// Partial deltas not sent yet: whether they are reasoning, and their text.
    gathered: Option<(bool, String)>,
    gathered_since: Instant,
}

/// About how many characters one partial `stream_event` carries…
const CHUNK_CHARS: usize = 40;
/// …unless its first delta waited this long (a slow model still streams).
const CHUNK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl TurnState {
    fn new() -> TurnState {
        TurnState {
            run_id: format!("run-{}", uuid::Uuid::new_v4()),
            started: Instant::now(),
            stream_id: new_id(),
            last_tool_text: None,
            finished: false,
            gathered: None,
            gathered_since: Instant::now(),
        }
    }

    fn message(&self, kind: &str, id: &str, fields: Value) -> Value {
        let mut line = json!({"type": "message", "message_type": kind, "id": id, "run_id": self.run_id, "uuid": id});
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        line
    }

    /// The wire lines for one message of the turn. Partial deltas are gathered
    /// into chunks of about [`CHUNK_CHARS`]: the SDK keeps only the last 100 lines
    /// an application has not read yet.
    fn lines(&mut self, context: &Context, message: SdkMessage, conversation_id: &str) -> Vec<Value> {
        let partial = context.partial;
        if let SdkMessage::StreamEvent { event } = &message {
            if partial {
                let (reasoning, text) = match event {
                    StreamDelta::Text(text) => (false, text),
                    StreamDelta::Reasoning(text) => (true, text),
                };
                let mut lines = Vec::new();
                if self.gathered.as_ref().is_some_and(|(r, _)| *r != reasoning) {
                    lines.extend(self.flush());
                }
                if self.gathered.is_none() {
                    self.gathered_since = Instant::now();
                }
                self.gathered.get_or_insert_with(|| (reasoning, String::new())).1.push_str(text);
                let full = self.gathered.as_ref().is_some_and(|(_, t)| t.chars().count() >= CHUNK_CHARS);
                if full || self.gathered_since.elapsed() >= CHUNK_WAIT {
                    lines.extend(self.flush());
                }
                return lines;
            }
        }
        let mut lines: Vec<Value> = self.flush().into_iter().collect();
        lines.extend(self.whole(context, message, conversation_id));
        lines
    }

    /// The gathered deltas as one `stream_event`.
    fn flush(&mut self) -> Option<Value> {
        let (reasoning, text) = self.gathered.take()?;
        let mut event = match reasoning {
            false => json!({"message_type": "assistant_message", "content": text}),
            true => json!({"message_type": "reasoning_message", "reasoning": text}),
        };
        event["id"] = json!(self.stream_id);
        event["run_id"] = json!(self.run_id);
        Some(json!({"type": "stream_event", "event": event, "uuid": self.stream_id}))
    }

    fn whole(&mut self, context: &Context, message: SdkMessage, conversation_id: &str) -> Vec<Value> {
        let partial = context.partial;
        match message {
            SdkMessage::Assistant { content, uuid } => {
                self.stream_id = new_id();
                if partial || content.is_empty() {
                    return Vec::new();
                }
                vec![self.message("assistant_message", &uuid, json!({"content": content}))]
            }
            SdkMessage::Reasoning { content } if !partial && !content.is_empty() => {
                vec![self.message("reasoning_message", &new_id(), json!({"reasoning": content}))]
            }
            SdkMessage::ToolCall { tool_call_id, tool_name, tool_input } => {
                self.stream_id = new_id();
                let arguments = match tool_input {
                    Value::String(raw) => raw,
                    other => other.to_string(),
                };
                let call =
                    json!({"tool_call": {"tool_call_id": tool_call_id, "name": tool_name, "arguments": arguments}});
                vec![self.message("tool_call_message", &new_id(), call)]
            }
            SdkMessage::ToolResult { tool_call_id, content, is_error } => {
                self.last_tool_text = Some(content.clone());
                let status = if is_error { "error" } else { "success" };
                let fields = json!({"tool_call_id": tool_call_id, "status": status, "tool_return": content});
                vec![self.message("tool_return_message", &new_id(), fields)]
            }
            SdkMessage::Result(result) => {
                self.finished = true;
                self.result_lines(context, result, conversation_id)
            }
            // Printed once at start-up; approvals are asked as control requests.
            SdkMessage::Init { .. }
            | SdkMessage::ApprovalRequest { .. }
            | SdkMessage::ApprovalResolved { .. }
            | SdkMessage::StreamEvent { .. }
            | SdkMessage::Reasoning { .. } => Vec::new(),
        }
    }

    fn result_lines(&mut self, context: &Context, result: TurnResult, conversation_id: &str) -> Vec<Value> {
        let mut lines = Vec::new();
        let (subtype, stop_reason) = match (result.success, result.stop_reason) {
            (_, StopReason::Cancelled) => ("interrupted", "cancelled"),
            (true, StopReason::MaxSteps) => ("success", "max_steps"),
            (true, _) => ("success", "end_turn"),
            (false, _) if result.error_kind == Some(ErrorKind::Model) => ("error", "llm_api_error"),
            (false, _) => ("error", "error"),
        };
        if subtype == "error" {
            let message = result.error.clone().unwrap_or_else(|| "the turn failed".into());
            lines.push(json!({
                "type": "error", "message": message, "stop_reason": stop_reason, "run_id": self.run_id,
                "api_error": {"message_type": "error_message", "error_type": stop_reason, "detail": message, "run_id": self.run_id},
            }));
        }
        let text = match subtype {
            "error" => Value::Null,
            _ => json!(result.result.clone().or_else(|| self.last_tool_text.clone()).unwrap_or_default()),
        };
        lines.push(json!({
            "type": "result",
            "subtype": subtype,
            "result": text,
            "stop_reason": stop_reason,
            "agent_id": context.agent_id,
            "conversation_id": conversation_id,
            "duration_ms": self.started.elapsed().as_millis() as u64,
            "duration_api_ms": 0,
            "num_turns": result.num_steps,
            "run_ids": [self.run_id],
            "usage": result.usage,
            "uuid": format!("result-{}", uuid::Uuid::new_v4()),
        }));
        lines
    }

    /// The `error` and `result` of a line that could not be a turn.
    fn refused(&self, context: &Context, problem: &str) -> Vec<Value> {
        let mut result = self.lost_result(context);
        result["stop_reason"] = json!("error");
        vec![json!({"type": "error", "message": problem, "stop_reason": "error", "run_id": self.run_id}), result]
    }

    /// The turn's runner vanished without a result (it cannot, but the SDK must get one).
    fn lost_result(&self, context: &Context) -> Value {
        json!({
            "type": "result", "subtype": "error", "result": null, "stop_reason": "error",
            "agent_id": context.agent_id, "conversation_id": context.conversation_id,
            "duration_ms": self.started.elapsed().as_millis() as u64, "duration_api_ms": 0, "num_turns": 0,
            "run_ids": [self.run_id], "usage": null,
        })
    }
}

fn new_id() -> String {
    format!("msg-{}", uuid::Uuid::new_v4())
}

/// Reads one JSON object per line; blank lines are skipped, anything else that is
/// not a JSON object is reported. Ends when the input does.
fn read_lines<R: AsyncRead + Unpin + Send + 'static>(input: R) -> mpsc::Receiver<Result<Value, String>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut reader = BufReader::new(input);
        loop {
            let mut buf = Vec::new();
            match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') && buf.len() as u64 == MAX_LINE {
                // Skip the rest of the oversized line.
                let mut rest = Vec::new();
                let _ = reader.read_until(b'\n', &mut rest).await;
                if tx.send(Err("Input line too long".into())).await.is_err() {
                    break;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            if text.trim().is_empty() {
                continue;
            }
            let parsed = match serde_json::from_str::<Value>(text.trim()) {
                Ok(v) if v.is_object() => Ok(v),
                _ => Err("Invalid JSON input".to_string()),
            };
            if tx.send(parsed).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// The session's one writer: whole lines, each flushed; `gone` fires when the
/// output cannot be written any more.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut lines: mpsc::UnboundedReceiver<Value>,
    mut output: W,
    session_id: String,
    gone: tokio_util::sync::CancellationToken,
) {
    while let Some(mut line) = lines.recv().await {
        if line.is_null() {
            break;
        }
        if let Some(object) = line.as_object_mut() {
            object.entry("session_id").or_insert_with(|| json!(session_id));
        }
        let mut text = line.to_string();
        text.push('\n');
        if output.write_all(text.as_bytes()).await.is_err() || output.flush().await.is_err() {
            gone.cancel();
            return;
        }
    }
    let _ = output.shutdown().await;
}
