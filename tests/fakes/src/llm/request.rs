//! Recorded chat-completions requests and helpers to inspect them in assertions.

use std::collections::HashMap;

use serde_json::Value;

/// One `POST .../chat/completions` request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path: String,
    /// Header names are lowercase; repeated headers are joined with ", ".
    pub headers: HashMap<String, String>,
    /// The JSON body, or a JSON string holding the raw text if it was not JSON.
    pub body: Value,
    /// When the request arrived.
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// `body["messages"]`, or empty.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Text of every `role=system` message, joined by "\n" ("" if none).
    pub fn system_prompt(&self) -> String {
        self.texts_with_role(Some("system")).join("\n")
    }

    /// Text of the last `role=user` message ("" if none).
    pub fn last_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .unwrap_or_default()
    }

    /// The text of every user message after the last non-user one (the messages
    /// a model would be answering), joined by "\n".
    pub fn unanswered_user_text(&self) -> String {
        let messages = self.messages();
        let trailing: Vec<String> =
            messages.iter().rev().take_while(|m| m["role"] == "user").map(|m| content_text(&m["content"])).collect();
        trailing.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Every message's non-empty text content (incl. tool results), joined by "\n".
    pub fn all_text(&self) -> String {
        self.texts_with_role(None).join("\n")
    }

    /// `body["tools"][i]["function"]["name"]`.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str())
            .map(str::to_owned)
            .collect()
    }

    /// `(tool_call_id, content)` of every `role=tool` message.
    pub fn tool_results(&self) -> Vec<(String, String)> {
        self.messages()
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
        self.body["model"].as_str()
    }

    /// Whether the client asked for a streamed response.
    pub fn is_stream(&self) -> bool {
        self.body["stream"].as_bool().unwrap_or(false)
    }

    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    fn texts_with_role(&self, role: Option<&str>) -> Vec<String> {
        self.messages()
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

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            path: "/v1/chat/completions".into(),
            headers: HashMap::new(),
            body,
            received_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn accessors_read_messages_tools_and_results() {
        let req = request(json!({
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
        }));
        assert_eq!(req.messages().len(), 5);
        assert_eq!(req.system_prompt(), "be brief");
        assert_eq!(req.last_user_text(), "second\npart");
        assert_eq!(req.all_text(), "be brief\nfirst\n12:00\nsecond\npart");
        assert_eq!(req.tool_names(), vec!["clock"]);
        assert_eq!(req.tool_results(), vec![("call_9".into(), "12:00".into())]);
    }

    #[test]
    fn accessors_tolerate_non_chat_bodies() {
        let req = request(Value::String("not json".into()));
        assert!(req.messages().is_empty());
        assert_eq!(req.system_prompt(), "");
        assert_eq!(req.last_user_text(), "");
        assert!(req.tool_names().is_empty());
    }
}
