//! One SDK session on the wire (`letta-code-wire.md` §3–§6): `system/init` first,
//! then one turn per `user` line with exactly one `result` each, while control
//! requests are answered as they come, during a turn too (`list_messages` from
//! the store, `interrupt` at once). One task reads, one writes whole lines.

use std::collections::VecDeque;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::control::{success, Context};
use super::start::Started;
use super::turn::TurnState;
use super::Engine;
use crate::agent::{SdkMessage, UserInput};

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
    Ok(UserInput { text, id: None, first: false })
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
