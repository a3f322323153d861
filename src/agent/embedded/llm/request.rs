//! What a model call sends: the messages, the tool definitions kept as JSON text,
//! and the body written from both without copying their JSON values.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// One request to `/chat/completions`.
pub struct ChatRequest {
    /// The model's name as the endpoint knows it.
    pub model: String,
    /// The conversation in the OpenAI `messages` format, system prompt first.
    pub messages: Vec<Value>,
    /// What the model may call.
    pub tools: Tools,
}

/// Tool definitions in the OpenAI `tools` format, kept as their JSON text: every
/// turn sends the same few kilobytes, so they are serialized once, not per call.
#[derive(Clone, Default)]
pub struct Tools(Option<Arc<RawValue>>);

impl Tools {
    /// These definitions; none when the list is empty.
    pub fn new(definitions: &[Value]) -> Tools {
        if definitions.is_empty() {
            return Tools(None);
        }
        let json = serde_json::to_string(definitions).expect("a JSON value always serializes");
        Tools(Some(Arc::from(RawValue::from_string(json).expect("serde_json's output is JSON"))))
    }

    /// Whether there are none (then the body has no `tools`).
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes of their JSON (the array's), for estimating the prompt's size.
    pub fn json_len(&self) -> usize {
        self.0.as_ref().map_or(0, |raw| raw.get().len())
    }
}

/// Which optional parts a body carries; a call drops them when the server refuses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Ask for a streamed reply.
    pub stream: bool,
    /// Send the fields not every OpenAI-compatible server accepts
    /// ([`super::OPTIONAL_FIELDS`]).
    pub optional_fields: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [Value],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl ChatRequest {
    /// The request's JSON body in this shape (shared by its retries).
    pub fn body(&self, shape: Shape) -> bytes::Bytes {
        let tools = self.tools.0.as_deref();
        let optional = |on: bool| shape.optional_fields && on;
        let body = Body {
            model: &self.model,
            messages: &self.messages,
            stream: shape.stream,
            stream_options: optional(shape.stream).then_some(StreamOptions { include_usage: true }),
            tools,
            // Without it some servers (llama-cpp-python) silently ignore the tools.
            tool_choice: optional(tools.is_some()).then_some("auto"),
            parallel_tool_calls: optional(tools.is_some()).then_some(true),
        };
        serde_json::to_vec(&body).expect("a JSON value always serializes").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(tools: &[Value]) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![json!({"role": "user", "content": "hi"})],
            tools: Tools::new(tools),
        }
    }

    fn parsed(request: &ChatRequest, stream: bool, optional_fields: bool) -> Value {
        serde_json::from_slice(&request.body(Shape { stream, optional_fields })).unwrap()
    }

    #[test]
    fn a_body_carries_the_optional_fields_only_in_the_shape_that_asks_for_them() {
        let tool = json!({"type": "function", "function": {"name": "t", "parameters": {}}});
        let with_tools = request(std::slice::from_ref(&tool));
        assert_eq!(
            parsed(&with_tools, true, true),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                   "stream_options": {"include_usage": true}, "tools": [tool],
                   "tool_choice": "auto", "parallel_tool_calls": true})
        );
        assert_eq!(
            parsed(&with_tools, true, false),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, "tools": [tool]})
        );
        assert_eq!(
            parsed(&with_tools, false, true),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false, "tools": [tool],
                   "tool_choice": "auto", "parallel_tool_calls": true})
        );
        assert_eq!(
            parsed(&request(&[]), true, true),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true,
                   "stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn without_the_optional_fields_a_body_has_none_of_those_a_server_may_refuse() {
        let tool = json!({"type": "function", "function": {"name": "t", "parameters": {}}});
        for stream in [true, false] {
            let body = parsed(&request(std::slice::from_ref(&tool)), stream, false);
            for field in super::super::OPTIONAL_FIELDS {
                assert!(body.get(field).is_none(), "{field} sent: {body}");
            }
        }
    }

    #[test]
    fn tools_keep_their_definitions_and_size() {
        let tool = json!({"type": "function", "function": {"name": "t"}});
        let tools = Tools::new(std::slice::from_ref(&tool));
        let raw = tools.0.as_ref().expect("some tools");
        assert_eq!(serde_json::from_str::<Vec<Value>>(raw.get()).unwrap(), vec![tool.clone()]);
        assert_eq!(tools.json_len(), serde_json::to_string(&[tool]).unwrap().len());
        assert!(Tools::new(&[]).is_empty() && Tools::default().json_len() == 0);
    }
}
