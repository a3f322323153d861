//! Scripted replies: what the fake LLM answers to each chat-completions request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

/// Source of process-unique tool call ids (`call_<n>`).
static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// What the server does when a request arrives and the script is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// HTTP 500 `{"error":{"message":"fake llm: no scripted reply"}}`.
    #[default]
    Error,
    /// Replies with `echo: <text of the last user message>`.
    Echo,
    /// A tiny agent that answers every message since its last reply (the user
    /// messages at the end of the request), decided by the request alone (so it holds under any
    /// concurrency and across replays): a last user message `RUN <command>` gets a
    /// `Bash` call of that command; once the request ends with its result, the
    /// reply is `ran: <command>`; a message containing `long` gets `echo: <text>`,
    /// about 5,000 characters of filler and `end: <text>`; one containing `slow`
    /// gets its echo in ten chunks (slow with a chunk delay); `CALL <tool> <json>`
    /// calls that tool when the request offers it and then says
    /// `called <tool>: <result>`; `RECALL` lists every earlier user message of
    /// the request (`you said: a | b`); `MEMORY` answers with the system prompt;
    /// anything else is echoed as with `Echo`.
    Agent,
}

/// Ways real servers depart from OpenAI's behaviour, each switchable (all off by
/// default). Seen on llama-cpp-python 0.3.x, which has all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// HTTP 500 `{"detail": …}` when an assistant message's `content` is null
    /// (the scripted reply is kept for the next request).
    pub null_content_is_500: bool,
    /// Tools are ignored unless the request sets `tool_choice`: a scripted tool
    /// call is answered with plain text instead.
    pub tools_need_tool_choice: bool,
    /// A streamed request with tools and a `tool_choice` gets an empty stream (the
    /// scripted reply is kept for the next request).
    pub no_streamed_tool_calls: bool,
    /// No usage is reported, whatever `stream_options` asks.
    pub no_usage: bool,
}

impl Quirks {
    /// Everything llama-cpp-python's server does differently.
    pub fn llama_cpp_python() -> Quirks {
        Quirks { null_content_is_500: true, tools_need_tool_choice: true, no_streamed_tool_calls: true, no_usage: true }
    }
}

/// One tool call the fake model makes.
#[derive(Clone, Debug)]
pub struct FakeToolCall {
    pub id: String,
    pub name: String,
    /// Raw JSON text, exactly as it goes on the wire.
    pub arguments: String,
}

impl FakeToolCall {
    /// A call with a fresh process-unique id.
    pub fn new(name: &str, args: &Value) -> FakeToolCall {
        let n = NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed);
        FakeToolCall { id: format!("call_{n}"), name: name.to_owned(), arguments: args.to_string() }
    }
}

/// One scripted answer, consumed by exactly one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Content deltas, one SSE chunk each.
    Text { chunks: Vec<String> },
    /// Optional text deltas, then the tool calls; finish_reason `tool_calls`.
    ToolCalls { text: Vec<String>, calls: Vec<FakeToolCall> },
    /// Reasoning deltas in `field` (`reasoning_content` or `reasoning`), then text.
    Reasoning { field: &'static str, reasoning: Vec<String>, text: Vec<String> },
    /// That status with a JSON body; `Retry-After: <secs>` when set.
    HttpError { status: u16, retry_after: Option<u64>, body: String },
    /// HTTP 200 `text/event-stream` whose body is exactly `raw`.
    Malformed { raw: String },
    /// Waits before responding at all.
    Delay { delay: Duration, then: Box<Reply> },
    /// Waits until the gate opens (see [`Gate`]), then responds.
    Gated { gate: Gate, then: Box<Reply> },
    /// Streams the role delta and the first `deltas` deltas of `then`'s message,
    /// then holds the rest of the stream until `gate` opens.
    Held { deltas: usize, gate: Gate, then: Box<Reply> },
    /// Accepts the request and never responds; the connection stays open
    /// until the server is dropped.
    Hang,
}

impl Reply {
    /// `s` split into about three content chunks on char boundaries.
    pub fn text(s: &str) -> Reply {
        let parts = s.chars().count().clamp(1, 3);
        Reply::Text { chunks: split_into(s, parts) }
    }

    /// Exactly these content chunks.
    pub fn chunks<I, S>(chunks: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Reply::Text { chunks: chunks.into_iter().map(Into::into).collect() }
    }

    /// One tool call with a fresh id.
    pub fn tool_call(name: &str, args: Value) -> Reply {
        Reply::tool_calls(vec![(name, args)])
    }

    /// Several tool calls in one message (parallel tool calls).
    pub fn tool_calls(calls: Vec<(&str, Value)>) -> Reply {
        Reply::ToolCalls {
            text: Vec::new(),
            calls: calls.iter().map(|(name, args)| FakeToolCall::new(name, args)).collect(),
        }
    }

    /// Reasoning in `reasoning_content` followed by `text`.
    pub fn reasoning(reasoning: &str, text: &str) -> Reply {
        Reply::Reasoning {
            field: "reasoning_content",
            reasoning: split_into(reasoning, reasoning.chars().count().clamp(1, 3)),
            text: split_into(text, text.chars().count().clamp(1, 3)),
        }
    }

    /// An HTTP error with an OpenAI-style JSON error body.
    pub fn error(status: u16) -> Reply {
        Reply::HttpError {
            status,
            retry_after: None,
            body: error_body(&format!("fake llm: scripted error {status}"), status),
        }
    }

    /// HTTP 429 with `Retry-After: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        Reply::HttpError {
            status: 429,
            retry_after: Some(retry_after_secs),
            body: error_body("fake llm: rate limited", 429),
        }
    }

    /// This reply, sent only after `delay`.
    pub fn delayed(self, delay: Duration) -> Reply {
        Reply::Delay { delay, then: Box::new(self) }
    }

    /// This reply, sent only once `gate` opens: a turn held as long as a test needs.
    pub fn gated(self, gate: &Gate) -> Reply {
        Reply::Gated { gate: gate.clone(), then: Box::new(self) }
    }

    /// This reply streamed as far as the role delta and its first `deltas`
    /// deltas (reasoning, content, then each tool call's head and argument
    /// fragments, in stream order), the rest only once `gate` opens: a test can
    /// act between two chunks as the daemon sees them, not as a clock spaces
    /// them. Holds nest (one per gate); a reply that is not streamed ignores them.
    pub fn held_after(self, deltas: usize, gate: &Gate) -> Reply {
        Reply::Held { deltas, gate: gate.clone(), then: Box::new(self) }
    }
}

/// Holds gated replies until opened; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Gate(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every reply waiting here, and every later one, through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    pub(crate) async fn passed(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
}

/// An OpenAI-style error body.
pub(crate) fn error_body(message: &str, status: u16) -> String {
    json!({"error": {"message": message, "type": "fake_error", "code": status}}).to_string()
}

/// Splits `s` into exactly `parts` pieces of near-equal char count
/// (pieces are empty when `s` is shorter than `parts`).
pub(crate) fn split_into(s: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let parts = parts.max(1);
    (0..parts)
        .map(|i| {
            let start = chars.len() * i / parts;
            let end = chars.len() * (i + 1) / parts;
            chars[start..end].iter().collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_on_char_boundaries_into_three() {
        let Reply::Text { chunks } = Reply::text("héllo wörld") else {
            panic!("expected text");
        };
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), "héllo wörld");
    }

    #[test]
    fn empty_text_is_one_chunk() {
        let Reply::Text { chunks } = Reply::text("") else {
            panic!("expected text");
        };
        assert_eq!(chunks, vec![String::new()]);
    }

    #[test]
    fn tool_call_ids_are_unique() {
        let Reply::ToolCalls { calls, .. } = Reply::tool_calls(vec![("a", json!({})), ("b", json!({"x": 1}))]) else {
            panic!("expected tool calls");
        };
        assert_ne!(calls[0].id, calls[1].id);
        assert!(calls[0].id.starts_with("call_"));
        assert_eq!(calls[1].arguments, r#"{"x":1}"#);
    }
}
