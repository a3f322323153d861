//! Recorded chat-completions requests and helpers to inspect them in assertions.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use serde::Deserialize;
use serde_json::Value;

/// One `POST .../chat/completions` request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path: String,
    /// Header names are lowercase; repeated headers are joined with ", ".
    pub headers: HashMap<String, String>,
    /// When the request arrived.
    pub received_at: std::time::Instant,
    /// The body as received.
    raw: Bytes,
    /// What the fake answers from, read as the request arrived.
    head: Head,
    /// The whole body as JSON, built when first asked for ([`RecordedRequest::body`]):
    /// most requests are never looked at whole, and a tree of every request's
    /// tools' definitions took more of a benchmark's CPU than the daemon's reading.
    body: OnceLock<Value>,
}

/// The fields the fake answers from; the rest of the body is checked to be JSON
/// and kept as text.
#[derive(Clone, Debug, Deserialize)]
struct Head {
    #[serde(default)]
    model: Value,
    #[serde(default)]
    stream: Value,
    #[serde(default)]
    messages: Value,
}

impl RecordedRequest {
    /// The request with this body, and why it is refused, if it is: a body must
    /// be a JSON object.
    pub(crate) fn new(path: String, headers: HashMap<String, String>, raw: Bytes) -> (RecordedRequest, Option<String>) {
        let received_at = std::time::Instant::now();
        let request = |head, body| RecordedRequest { path, headers, received_at, raw: raw.clone(), head, body };
        // (A struct is also read from an array of its fields: only an object
        // will do. The fields skipped are checked for their syntax only, not
        // for text that is not UTF-8, which is checked here; a lone surrogate
        // escape, a number out of range or nesting deeper than 128 there pass,
        // and `body` shows such a body as text.)
        let object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && std::str::from_utf8(&raw).is_ok();
        if let Some(head) = object.then(|| serde_json::from_slice::<Head>(&raw).ok()).flatten() {
            return (request(head, OnceLock::new()), None);
        }
        // Not an object with those fields (not JSON, or a field twice): read whole,
        // to say why or to take it as JSON does.
        let (body, problem) = match serde_json::from_slice::<Value>(&raw) {
            Ok(body @ Value::Object(_)) => (body, None),
            Ok(body) => (body, Some("fake llm: request body must be a JSON object".into())),
            Err(e) => {
                let text = String::from_utf8_lossy(&raw).into_owned();
                (Value::String(text), Some(format!("fake llm: request body is not JSON: {e}")))
            }
        };
        let head =
            Head { model: body["model"].clone(), stream: body["stream"].clone(), messages: body["messages"].clone() };
        (request(head, OnceLock::from(body)), problem)
    }

    /// The JSON body, or a JSON string holding the raw text if it was not JSON.
    pub fn body(&self) -> &Value {
        self.body.get_or_init(|| {
            serde_json::from_slice(&self.raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.raw).into_owned()))
        })
    }

    /// `body["messages"]`, or empty.
    pub fn messages(&self) -> Vec<Value> {
        self.message_list().to_vec()
    }

    /// `body["messages"]` in place, or empty.
    pub(crate) fn message_list(&self) -> &[Value] {
        self.head.messages.as_array().map(Vec::as_slice).unwrap_or_default()
    }

    /// Text of every `role=system` message, joined by "\n" ("" if none).
    pub fn system_prompt(&self) -> String {
        self.texts_with_role(Some("system")).join("\n")
    }

    /// Text of the last `role=user` message ("" if none).
    pub fn last_user_text(&self) -> String {
        self.message_list()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .unwrap_or_default()
    }

    /// The text of every user message after the last non-user one (the messages
    /// a model would be answering), joined by "\n".
    pub fn unanswered_user_text(&self) -> String {
        let trailing: Vec<String> = self
            .message_list()
            .iter()
            .rev()
            .take_while(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .collect();
        trailing.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Every message's non-empty text content (incl. tool results), joined by "\n".
    pub fn all_text(&self) -> String {
        self.texts_with_role(None).join("\n")
    }

    /// `body["tools"][i]["function"]["name"]`.
    pub fn tool_names(&self) -> Vec<String> {
        self.body()["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str())
            .map(str::to_owned)
            .collect()
    }

    /// `(tool_call_id, content)` of every `role=tool` message.
    pub fn tool_results(&self) -> Vec<(String, String)> {
        self.message_list()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| {
                let id = m["tool_call_id"].as_str().unwrap_or_default().to_owned();
                (id, content_text(&m["content"]))
            })
            .collect()
    }

    /// The `model` the client asked for, if any.
    pub fn model(&self) -> Option<&str> {
        self.head.model.as_str()
    }

    /// Whether the client asked for a streamed response.
    pub fn is_stream(&self) -> bool {
        self.head.stream.as_bool().unwrap_or(false)
    }

    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    fn texts_with_role(&self, role: Option<&str>) -> Vec<String> {
        self.message_list()
            .iter()
            .filter(|m| role.is_none_or(|r| m["role"] == r))
            .map(|m| content_text(&m["content"]))
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// Text of a message `content`: a string, or an array of `{type:"text",text}`
/// parts joined by "\n". Anything else is "".
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: &[u8]) -> RecordedRequest {
        RecordedRequest::new("/v1/chat/completions".into(), HashMap::new(), Bytes::copy_from_slice(body)).0
    }

    #[test]
    fn accessors_read_messages_tools_and_results() {
        let req = request(
            &serde_json::to_vec(&json!({
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": null,
                     "tool_calls": [{"id": "call_9", "type": "function",
                                     "function": {"name": "clock", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "call_9", "content": "12:00"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "second"},
                        {"type": "image_url", "image_url": {"url": "data:"}},
                        {"type": "text", "text": "part"}
                    ]}
                ],
                "tools": [{"type": "function", "function": {"name": "clock"}}]
            }))
            .unwrap(),
        );
        assert_eq!(req.messages().len(), 5);
        assert_eq!(req.system_prompt(), "be brief");
        assert_eq!(req.last_user_text(), "second\npart");
        assert_eq!(req.all_text(), "be brief\nfirst\n12:00\nsecond\npart");
        assert_eq!(req.tool_names(), vec!["clock"]);
        assert_eq!(req.tool_results(), vec![("call_9".into(), "12:00".into())]);
    }

    /// Read in part as it arrives, a request answers as one read whole would:
    /// a body that is JSON but not an object is refused, one whose field comes
    /// twice is taken as JSON takes it (the last one), and either is recorded.
    #[test]
    fn a_body_read_in_part_is_judged_and_recorded_as_a_whole_one() {
        let new = |raw: &[u8]| {
            RecordedRequest::new("/v1/chat/completions".into(), HashMap::new(), Bytes::copy_from_slice(raw))
        };
        let (array, problem) = new(b"[1, 2]");
        assert_eq!(problem.as_deref(), Some("fake llm: request body must be a JSON object"));
        assert_eq!(array.body(), &json!([1, 2]));
        let (twice, problem) = new(br#"{"model": "a", "model": "b", "messages": [{"role": "user", "content": "hi"}]}"#);
        assert_eq!(problem, None);
        assert_eq!((twice.model(), twice.last_user_text().as_str()), (Some("b"), "hi"));
        let (broken, problem) = new(br#"{"messages": [}"#);
        assert!(problem.is_some_and(|p| p.contains("not JSON")));
        let (_, problem) = new(b"{\"tools\": \"\xff\", \"messages\": []}");
        assert!(problem.is_some_and(|p| p.contains("not JSON")), "text that is not UTF-8, in a field skipped");
        assert_eq!(broken.body(), &Value::String(r#"{"messages": [}"#.into()));
        let (partly, problem) = new(br#"{"stream": true, "tools": [{"function": {"name": "x"}}], "messages": []}"#);
        assert_eq!(problem, None);
        assert!(partly.is_stream());
        assert_eq!(partly.tool_names(), ["x"], "the rest is read when asked for");
    }

    #[test]
    fn accessors_tolerate_non_chat_bodies() {
        let req = request(b"not json");
        assert_eq!(req.body(), &Value::String("not json".into()));
        assert!(req.messages().is_empty());
        assert_eq!(req.system_prompt(), "");
        assert_eq!(req.last_user_text(), "");
        assert!(req.tool_names().is_empty());
    }
}
