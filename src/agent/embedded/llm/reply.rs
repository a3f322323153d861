//! Assembles a model reply from streamed chunks (or one non-streamed completion).

use std::collections::BTreeMap;

use serde_json::Value;

use super::chunk::{Chunk, Object};
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

    /// One streamed event's text: a `chat.completion.chunk`, read without a tree
    /// of JSON values when it has the usual shape ([`Chunk::fast`]).
    pub fn apply_event(&mut self, payload: &str) -> Result<Vec<Delta>, LlmError> {
        if let Some(chunk) = Chunk::fast(payload) {
            return Ok(self.apply(chunk));
        }
        let value: Value = serde_json::from_str(payload).map_err(|_| {
            LlmError::Malformed(format!("a streamed event is not JSON: {}", super::excerpt(payload, 120)))
        })?;
        self.apply_chunk(&value)
    }

    /// One `chat.completion.chunk`, as a tree of JSON values.
    pub fn apply_chunk(&mut self, chunk: &Value) -> Result<Vec<Delta>, LlmError> {
        self.check_reported_error(chunk)?;
        if chunk.get("choices").and_then(Value::as_array).is_none() && chunk.get("usage").is_none() {
            return Err(LlmError::Malformed("a streamed chunk has neither choices nor usage".into()));
        }
        Ok(self.apply(Chunk::lenient(chunk)))
    }

    /// Adds a chunk's parts to the reply; what to pass on.
    fn apply(&mut self, chunk: Chunk<'_>) -> Vec<Delta> {
        self.chunks += 1;
        if let Some(counts) = &chunk.usage {
            self.reply.usage = Some(counts.usage());
        }
        let mut deltas = Vec::new();
        let Some(Object(choice)) = chunk.choices.and_then(|c| c.into_iter().next()) else {
            return deltas;
        };
        if let Some(reason) = choice.finish_reason {
            self.reply.finish_reason = Some(reason.into_owned());
        }
        let Some(Object(mut delta)) = choice.delta else {
            return deltas;
        };
        // Reasoning first: in one delta holding both (a whole completion), it came first.
        if let Some(text) = delta.reasoning().filter(|t| !t.is_empty()) {
            self.reply.reasoning.push_str(&text);
            deltas.push(Delta::Reasoning(text.into_owned()));
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.reply.text.push_str(&text);
            deltas.push(Delta::Text(text.into_owned()));
        }
        for (position, Object(call)) in delta.tool_calls.into_iter().flatten().enumerate() {
            let slot = self.calls.entry(call.index.unwrap_or(position as u64)).or_default();
            if let Some(id) = call.id {
                slot.id = id.into_owned();
            }
            if let Some(Object(f)) = call.function {
                if let Some(name) = f.name {
                    slot.name.push_str(&name);
                }
                if let Some(args) = f.arguments {
                    slot.arguments.push_str(&args);
                }
            }
        }
        deltas
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

    /// Each event read straight from its text builds what its tree of JSON
    /// values builds: the usual shapes by the fast read, the others (a field of
    /// another type, a key given twice, no choices, an error) by the tree.
    #[test]
    fn an_event_read_from_its_text_builds_what_its_tree_builds() {
        let fast = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"lo \"q\" \u00e9"}}],"error":null}"#,
            r#"{"choices":[{"delta":{"reasoning_content":null,"reasoning":"think"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":"hidden"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"Bash","arguments":"{\"c"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\":1}"}},{"id":"a","function":null}]}}]}"#,
            r#"{"choices":[{"delta":null,"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":9,"details":{"cached":1}}}"#,
        ];
        let by_tree = [
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":-1,"id":"c","function":{"name":"Read"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"x"}},7]}"#,
            r#"{"choices":[[{"content":"as an array"},null]]}"#,
            r#"[[],null,null]"#,
            r#"{"choices":[],"usage":[1,2,3]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[[0,"id",null]]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":2,"id":"d","function":["Write","{}"]}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3.0,"completion_tokens":1}}"#,
            r#"{"choices":null,"usage":null}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[],"error":{"message":"context length exceeded"}}"#,
            r#"{"foo":1}"#,
            "not json",
        ];
        for payload in fast {
            assert!(Chunk::fast(payload).is_some(), "read fast: {payload}");
        }
        for payload in by_tree {
            assert!(Chunk::fast(payload).is_none(), "read as a tree: {payload}");
        }
        let (mut from_text, mut from_tree) = (ReplyBuilder::default(), ReplyBuilder::default());
        for payload in fast.iter().chain(&by_tree) {
            let text = from_text.apply_event(payload);
            let tree = match serde_json::from_str::<Value>(payload) {
                Ok(value) => from_tree.apply_chunk(&value),
                Err(_) => Err(LlmError::Malformed(format!("a streamed event is not JSON: {payload}"))),
            };
            assert_eq!(text, tree, "{payload}");
        }
        assert_eq!(from_text.chunks, from_tree.chunks);
        let (text, tree) = (from_text.finish(), from_tree.finish());
        assert_eq!(text, tree);
        assert_eq!(text.text, "Hello \"q\" ébx");
        assert_eq!(text.reasoning, "think");
        assert_eq!(text.usage, Some(Usage { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 }));
        let calls: Vec<_> =
            text.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        assert_eq!(calls, [("c", "Read", "{}"), ("a", "Bash", "{\"c\":1}"), ("d", "", "{}")]);
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
