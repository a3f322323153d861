//! How one turn's messages look on the wire (`letta-code-wire.md` §5.2–§5.4): a
//! fresh `run_id` per turn, tool calls whole, partial deltas gathered into chunks,
//! and exactly one `result`.

use std::time::Instant;

use serde_json::{json, Value};

use super::control::Context;
use crate::agent::{ErrorKind, SdkMessage, StopReason, StreamDelta, TurnResult};

/// One turn's progress on the wire.
pub(super) struct TurnState {
    run_id: String,
    started: Instant,
    /// The id the current assistant message's deltas share.
    stream_id: String,
    last_tool_text: Option<String>,
    pub finished: bool,
    /// Partial deltas not sent yet: whether they are reasoning, and their text.
    gathered: Option<(bool, String)>,
    gathered_since: Instant,
}

/// About how many characters one partial `stream_event` carries…
const CHUNK_CHARS: usize = 40;
/// …unless its first delta waited this long (a slow model still streams).
const CHUNK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl TurnState {
    pub fn new() -> TurnState {
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
    pub fn lines(&mut self, context: &Context, message: SdkMessage, conversation_id: &str) -> Vec<Value> {
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
    pub fn refused(&self, context: &Context, problem: &str) -> Vec<Value> {
        let mut result = self.lost_result(context);
        result["stop_reason"] = json!("error");
        vec![json!({"type": "error", "message": problem, "stop_reason": "error", "run_id": self.run_id}), result]
    }

    /// The turn's runner vanished without a result (it cannot, but the SDK must get one).
    pub fn lost_result(&self, context: &Context) -> Value {
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
