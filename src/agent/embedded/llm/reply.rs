//! Assembles a model reply from streamed chunks (or one non-streamed completion).

use std::collections::BTreeMap;

use serde_json::Value;

use super::LlmError;
use crate::agent::Usage;
use crate::store::ToolCall;

/// Partial output, passed on as it arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Reasoning(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelReply {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    /// `None` when the server reported no usage.
    pub usage: Option<Usage>,
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
pub struct ReplyBuilder {
    reply: ModelReply,
    calls: BTreeMap<u64, PartialCall>,
    chunks: usize,
}

impl ReplyBuilder {
    /// Whether any chunk has been applied.
    pub fn started(&self) -> bool {
        self.chunks > 0
    }

    /// One `chat.completion.chunk`.
    pub fn apply_chunk(&mut self, chunk: &Value) -> Result<Vec<Delta>, LlmError> {
        self.check_reported_error(chunk)?;
        let choices = chunk.get("choices").and_then(Value::as_array);
        if choices.is_none() && chunk.get("usage").is_none() {
            return Err(LlmError::Malformed("a streamed chunk has neither choices nor usage".into()));
        }
        self.chunks += 1;
        self.take_usage(chunk);
        let mut deltas = Vec::new();
        let Some(choice) = choices.and_then(|c| c.first()) else {
            return Ok(deltas);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.reply.finish_reason = Some(reason.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(deltas);
        };
        // Reasoning first: in one delta holding both (a whole completion), it came first.
        if let Some(text) = reasoning_of(delta).filter(|t| !t.is_empty()) {
            self.reply.reasoning.push_str(text);
            deltas.push(Delta::Reasoning(text.to_string()));
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.reply.text.push_str(text);
            deltas.push(Delta::Text(text.to_string()));
        }
        for (position, call) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let slot = self.calls.entry(index).or_default();
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.id = id.to_string();
            }
            if let Some(f) = call.get("function") {
                if let Some(name) = f.get("name").and_then(Value::as_str) {
                    slot.name.push_str(name);
                }
                if let Some(args) = f.get("arguments").and_then(Value::as_str) {
                    slot.arguments.push_str(args);
                }
            }
        }
        Ok(deltas)
    }

    /// A whole non-streamed `chat.completion` (some servers ignore `stream: true`).
    pub fn apply_completion(&mut self, completion: &Value) -> Result<Vec<Delta>, LlmError> {
        self.check_reported_error(completion)?;
        let choice = completion
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .ok_or_else(|| LlmError::Malformed("the completion has no choices".into()))?;
        let message =
            choice.get("message").ok_or_else(|| LlmError::Malformed("the completion has no message".into()))?;
        // Reuse the chunk path: a message looks like one big delta.
        let as_chunk = serde_json::json!({
            "choices": [{ "delta": message, "finish_reason": choice.get("finish_reason") }],
            "usage": completion.get("usage"),
        });
        let mut deltas = self.apply_chunk(&as_chunk)?;
        deltas.retain(|d| matches!(d, Delta::Text(_) | Delta::Reasoning(_)));
        Ok(deltas)
    }

    pub fn finish(mut self) -> ModelReply {
        let mut seen = std::collections::HashSet::new();
        self.reply.tool_calls = std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, c)| {
                // Results are matched to calls by id, so each call needs its own.
                let id = if c.id.is_empty() || seen.contains(&c.id) {
                    format!("call_{index}_{}", uuid::Uuid::new_v4().simple())
                } else {
                    c.id
                };
                seen.insert(id.clone());
                ToolCall {
                    id,
                    name: c.name,
                    arguments: if c.arguments.trim().is_empty() { "{}".into() } else { c.arguments },
                }
            })
            .collect();
        self.reply
    }

    fn take_usage(&mut self, chunk: &Value) {
        let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) else {
            return;
        };
        let field = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
        let (prompt, completion) = (field("prompt_tokens"), field("completion_tokens"));
        let total = usage.get("total_tokens").and_then(Value::as_u64).unwrap_or(prompt + completion);
        self.reply.usage = Some(Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total });
    }

    fn check_reported_error(&self, value: &Value) -> Result<(), LlmError> {
        match value.get("error") {
            Some(e) if !e.is_null() => {
                let message =
                    e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string());
                Err(LlmError::Reported(super::error::excerpt(&message, 200)))
            }
            _ => Ok(()),
        }
    }
}

/// Servers name the reasoning field differently: `reasoning_content` (DeepSeek,
/// vLLM, llama.cpp) or `reasoning` (OpenRouter, Ollama).
fn reasoning_of(delta: &Value) -> Option<&str> {
    delta.get("reasoning_content").and_then(Value::as_str).or_else(|| delta.get("reasoning").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(delta: Value) -> Value {
        json!({"choices":[{"index":0,"delta":delta,"finish_reason":null}]})
    }

    #[test]
    fn assembles_text_reasoning_and_parallel_tool_calls() {
        let mut b = ReplyBuilder::default();
        let mut deltas = Vec::new();
        for c in [
            chunk(json!({"role":"assistant","reasoning_content":"think"})),
            chunk(json!({"content":"Hel"})),
            chunk(json!({"content":"lo"})),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"memory_insert","arguments":""}}]}),
            ),
            chunk(
                json!({"tool_calls":[{"index":1,"id":"b","function":{"name":"memory_rethink","arguments":"{\"la"}}]}),
            ),
            chunk(json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":1}"}}]})),
            chunk(json!({"tool_calls":[{"index":1,"function":{"arguments":"bel\":\"h\"}"}}]})),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
            json!({"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}),
        ] {
            deltas.extend(b.apply_chunk(&c).unwrap());
        }
        assert_eq!(deltas, [Delta::Reasoning("think".into()), Delta::Text("Hel".into()), Delta::Text("lo".into())]);
        let r = b.finish();
        assert_eq!(r.text, "Hello");
        assert_eq!(r.reasoning, "think");
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.usage, Some(Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }));
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!((r.tool_calls[0].id.as_str(), r.tool_calls[0].arguments.as_str()), ("a", "{\"x\":1}"));
        assert_eq!(r.tool_calls[1].arguments, "{\"label\":\"h\"}");
    }

    #[test]
    fn repeated_or_missing_call_ids_are_made_unique() {
        let mut b = ReplyBuilder::default();
        b.apply_chunk(&chunk(json!({"tool_calls":[
            {"index":0,"id":"same","function":{"name":"Bash","arguments":"{}"}},
            {"index":1,"id":"same","function":{"name":"Bash","arguments":"{}"}},
            {"index":2,"function":{"name":"Read","arguments":"{}"}}
        ]})))
        .unwrap();
        let ids: Vec<String> = b.finish().tool_calls.into_iter().map(|c| c.id).collect();
        assert_eq!(ids[0], "same");
        assert!(ids[1] != "same" && ids[2] != ids[1] && !ids[2].is_empty(), "{ids:?}");
    }

    #[test]
    fn non_streamed_completion_and_reported_errors() {
        let mut b = ReplyBuilder::default();
        let d = b
            .apply_completion(&json!({"choices":[{"message":{"role":"assistant","content":"hi","reasoning":"r"},"finish_reason":"stop"}]}))
            .unwrap();
        assert_eq!(d, [Delta::Reasoning("r".into()), Delta::Text("hi".into())], "the reasoning came first");
        assert_eq!(b.finish().text, "hi");

        let mut b = ReplyBuilder::default();
        let e = b.apply_chunk(&json!({"error":{"message":"context length exceeded"}})).unwrap_err();
        assert_eq!(e, LlmError::Reported("context length exceeded".into()));
        assert!(matches!(b.apply_chunk(&json!({"foo":1})), Err(LlmError::Malformed(_))));
    }
}
