//! OpenAI chat-completions wire format: streaming SSE chunks and non-streaming objects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::reply::{split_into, FakeToolCall};

/// Source of process-unique completion ids (`chatcmpl-fake-<n>`).
static NEXT_COMPLETION_ID: AtomicU64 = AtomicU64::new(1);

/// A successful assistant message, independent of how it is delivered.
#[derive(Clone, Debug, Default)]
pub(crate) struct Completion {
    pub reasoning_field: Option<&'static str>,
    pub reasoning: Vec<String>,
    pub text: Vec<String>,
    pub calls: Vec<FakeToolCall>,
}

impl Completion {
    fn finish_reason(&self) -> &'static str {
        if self.calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    /// Everything the model "generated", for the completion token estimate.
    fn generated_chars(&self) -> usize {
        let calls = self.calls.iter().map(|c| c.name.chars().count() + c.arguments.chars().count());
        let deltas = self.reasoning.iter().chain(&self.text);
        deltas.map(|s| s.chars().count()).chain(calls).sum()
    }
}

/// Fields shared by every chunk of one response.
pub(crate) struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_chars: usize,
}

impl Meta {
    pub fn new(model: &str, prompt_chars: usize) -> Meta {
        let n = NEXT_COMPLETION_ID.fetch_add(1, Ordering::Relaxed);
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Meta { id: format!("chatcmpl-fake-{n}"), created, model: model.to_owned(), prompt_chars }
    }

    fn envelope(&self, object: &str, choices: Value) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("id".into(), self.id.clone().into());
        map.insert("object".into(), object.into());
        map.insert("created".into(), self.created.into());
        map.insert("model".into(), self.model.clone().into());
        map.insert("choices".into(), choices);
        map
    }

    fn usage(&self, completion: &Completion) -> Value {
        let prompt = estimate_tokens(self.prompt_chars);
        let generated = estimate_tokens(completion.generated_chars());
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
        })
    }
}

/// Tokens estimated as chars / 4, rounded up, at least 1.
pub(crate) fn estimate_tokens(chars: usize) -> usize {
    chars.div_ceil(4).max(1)
}

/// The complete SSE body as separate `data: ...\n\n` events, ending with a
/// usage chunk and `data: [DONE]`.
pub(crate) fn sse_events(meta: &Meta, completion: &Completion) -> Vec<String> {
    let mut events: Vec<String> = deltas(completion).iter().map(|delta| chunk(meta, delta, &Value::Null)).collect();
    events.push(chunk(meta, &json!({}), &completion.finish_reason().into()));
    events.push(usage_chunk(meta, completion));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// A non-streaming `chat.completion` object.
pub(crate) fn completion_object(meta: &Meta, completion: &Completion) -> Value {
    let choice = json!({
        "index": 0,
        "message": message(completion),
        "finish_reason": completion.finish_reason(),
    });
    let mut body = meta.envelope("chat.completion", json!([choice]));
    body.insert("usage".into(), meta.usage(completion));
    Value::Object(body)
}

fn message(completion: &Completion) -> Value {
    let text = completion.text.concat();
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !completion.calls.is_empty() { Value::Null } else { text.into() };
    message.insert("content".into(), content);
    if let Some(field) = completion.reasoning_field {
        message.insert(field.into(), completion.reasoning.concat().into());
    }
    if !completion.calls.is_empty() {
        let calls = completion.calls.iter().map(full_tool_call).collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(message)
}

fn full_tool_call(call: &FakeToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    })
}

/// Every delta of the message, in order, starting with the role delta.
fn deltas(completion: &Completion) -> Vec<Value> {
    let mut deltas = vec![json!({"role": "assistant", "content": ""})];
    if let Some(field) = completion.reasoning_field {
        deltas.extend(completion.reasoning.iter().map(|r| single(field, r)));
    }
    deltas.extend(completion.text.iter().map(|t| single("content", t)));
    for (index, call) in completion.calls.iter().enumerate() {
        deltas.extend(tool_call_deltas(index, call));
    }
    deltas
}

/// How OpenAI streams one call: id and name first, then argument fragments.
fn tool_call_deltas(index: usize, call: &FakeToolCall) -> Vec<Value> {
    let head = json!({"tool_calls": [{
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }]});
    let parts = call.arguments.chars().count().clamp(2, 3);
    let fragments = split_into(&call.arguments, parts)
        .into_iter()
        .map(|fragment| json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}));
    std::iter::once(head).chain(fragments).collect()
}

fn single(key: &str, value: &str) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value.into());
    Value::Object(map)
}

/// One streamed chunk as it goes out: the fields of [`Meta::envelope`] in the
/// order a JSON object of them is written (by name), serialized straight from
/// borrowed parts. (Built as a `Value` tree and then written, the chunks took a
/// quarter of the fakes' CPU in the gateway benchmark; the bytes are the same.)
#[derive(Serialize)]
struct ChunkOut<'a> {
    choices: &'a [ChoiceOut<'a>],
    created: u64,
    id: &'a str,
    model: &'a str,
    object: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    delta: &'a Value,
    finish_reason: &'a Value,
    index: u32,
}

/// One chunk of `meta`'s response as an SSE event: `data: <json>` and the blank
/// line that ends it.
fn chunk_event(meta: &Meta, choices: &[ChoiceOut<'_>], usage: Option<Value>) -> String {
    let chunk = ChunkOut {
        choices,
        created: meta.created,
        id: &meta.id,
        model: &meta.model,
        object: "chat.completion.chunk",
        usage,
    };
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, &chunk).expect("a chunk is plain JSON");
    out.extend_from_slice(b"\n\n");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn chunk(meta: &Meta, delta: &Value, finish_reason: &Value) -> String {
    chunk_event(meta, &[ChoiceOut { delta, finish_reason, index: 0 }], None)
}

fn usage_chunk(meta: &Meta, completion: &Completion) -> String {
    chunk_event(meta, &[], Some(meta.usage(completion)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_estimate_rounds_up_with_minimum_one() {
        assert_eq!(estimate_tokens(0), 1);
        assert_eq!(estimate_tokens(4), 1);
        assert_eq!(estimate_tokens(5), 2);
    }

    /// A chunk built as a `Value` tree from [`Meta::envelope`], the way the
    /// chunks were written before [`ChunkOut`].
    fn as_tree(meta: &Meta, choices: Value, usage: Option<Value>) -> String {
        let mut body = meta.envelope("chat.completion.chunk", choices);
        if let Some(usage) = usage {
            body.insert("usage".into(), usage);
        }
        format!("data: {}\n\n", Value::Object(body))
    }

    #[test]
    fn chunks_are_written_byte_for_byte_as_their_json_tree() {
        let meta = Meta::new("model \"quoted\" é", 123);
        let call = FakeToolCall { id: "call_1".into(), name: "Bash".into(), arguments: r#"{"command":"ls"}"#.into() };
        let completion = Completion {
            reasoning_field: Some("reasoning_content"),
            reasoning: vec!["think \n".into()],
            text: vec!["a \"b\"".into(), " ✓".into()],
            calls: vec![call],
        };
        let events = sse_events(&meta, &completion);
        let deltas = deltas(&completion);
        assert_eq!(events.len(), deltas.len() + 3);
        for (event, delta) in events.iter().zip(&deltas) {
            let choice = json!([{"index": 0, "delta": delta, "finish_reason": null}]);
            assert_eq!(event, &as_tree(&meta, choice, None));
        }
        let finish = json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]);
        assert_eq!(events[deltas.len()], as_tree(&meta, finish, None));
        assert_eq!(events[deltas.len() + 1], as_tree(&meta, json!([]), Some(meta.usage(&completion))));
        assert_eq!(events[deltas.len() + 2], "data: [DONE]\n\n");
    }

    #[test]
    fn short_arguments_still_stream_in_two_fragments() {
        let call = FakeToolCall { id: "call_x".into(), name: "noop".into(), arguments: "{}".into() };
        let deltas = tool_call_deltas(0, &call);
        assert_eq!(deltas.len(), 3);
        assert_eq!(deltas[1]["tool_calls"][0]["function"]["arguments"], "{");
        assert_eq!(deltas[2]["tool_calls"][0]["function"]["arguments"], "}");
    }
}
