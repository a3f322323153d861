//! Tools the SDK's program registers (`register_external_tools`) and runs itself:
//! offered to the model beside the built-in ones; a call is sent to the program as
//! `execute_external_tool` and waits for its `external_tool_result`.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::permissions::{Waiting, UNANSWERED};
use crate::agent::embedded::tools;
use crate::agent::ExternalTools;

/// The session's registered tools.
pub struct Registered {
    /// Name and chat-completions definition of each.
    tools: Mutex<Vec<(String, Value)>>,
    out: mpsc::UnboundedSender<Value>,
    waiting: Waiting,
}

impl Registered {
    pub fn new(out: mpsc::UnboundedSender<Value>, waiting: Waiting) -> Registered {
        Registered { tools: Mutex::default(), out, waiting }
    }

    /// Replaces the registered tools with `list` (the request's `tools`); returns
    /// how many were taken. A name the model could not call, or one of the
    /// built-in tools', is skipped.
    pub fn register(&self, list: &Value) -> usize {
        let builtin = tools::names();
        let mut taken = Vec::new();
        for tool in list.as_array().into_iter().flatten() {
            let Some(name) = tool["name"].as_str() else { continue };
            let callable = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !callable || builtin.iter().any(|b| b == name) || taken.iter().any(|(n, _)| n == name) {
                tracing::warn!(
                    tool = name,
                    "an external tool was not registered (a name the model cannot call, or taken)"
                );
                continue;
            }
            let description = tool["description"].as_str().or(tool["label"].as_str()).unwrap_or("");
            let parameters = match &tool["parameters"] {
                p @ Value::Object(_) => p.clone(),
                _ => json!({"type": "object", "properties": {}}),
            };
            let definition = json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}});
            taken.push((name.to_string(), definition));
        }
        let count = taken.len();
        *self.tools.lock().unwrap_or_else(|p| p.into_inner()) = taken;
        count
    }
}

#[async_trait]
impl ExternalTools for Registered {
    fn definitions(&self) -> Vec<Value> {
        self.tools.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(_, d)| d.clone()).collect()
    }

    fn has(&self, name: &str) -> bool {
        self.tools.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|(n, _)| n == name)
    }

    async fn call(&self, name: &str, tool_call_id: &str, input: Value) -> (String, bool) {
        let request_id = format!("ext-{tool_call_id}");
        let Some(answer) = self.waiting.open(&request_id) else { return (UNANSWERED.into(), true) };
        let request = json!({
            "type": "control_request",
            "request_id": request_id,
            "request": {"subtype": "execute_external_tool", "tool_call_id": tool_call_id, "tool_name": name, "input": input},
        });
        if self.out.send(request).is_err() {
            return (UNANSWERED.into(), true);
        }
        match answer.await {
            Ok(response) => outcome(&response),
            Err(_) => (UNANSWERED.into(), true),
        }
    }
}

/// The program's `external_tool_result` as what the model sees.
fn outcome(response: &Value) -> (String, bool) {
    if response["subtype"] == "error" {
        return (response["error"].as_str().unwrap_or("the program could not run the tool").to_string(), true);
    }
    let parts: Vec<String> = response["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|part| match part["type"].as_str() {
            Some("text") => part["text"].as_str().unwrap_or("").to_string(),
            Some("image") => "[an image; this model connection receives text only]".to_string(),
            _ => String::new(),
        })
        .filter(|t| !t.is_empty())
        .collect();
    (parts.join("\n"), response["is_error"].as_bool().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registered_tools_are_offered_and_a_call_waits_for_the_programs_result() {
        let (out, mut lines) = mpsc::unbounded_channel();
        let waiting = Waiting::default();
        let registered = Registered::new(out, waiting.clone());
        let count = registered.register(&json!([
            {"name": "react", "label": "React", "description": "Adds a reaction", "parameters": {"type": "object", "properties": {"emoji": {"type": "string"}}}},
            {"name": "Bash", "description": "a second Bash"},
            {"name": "no spaces allowed"},
        ]));
        assert_eq!(count, 1);
        assert!(registered.has("react") && !registered.has("Bash"));
        assert_eq!(registered.definitions()[0]["function"]["description"], "Adds a reaction");

        let call = tokio::spawn(async move { registered.call("react", "call_1", json!({"emoji": "👍"})).await });
        let request = lines.recv().await.unwrap();
        assert_eq!(request["request_id"], "ext-call_1");
        assert_eq!(request["request"]["subtype"], "execute_external_tool");
        assert_eq!(request["request"]["input"]["emoji"], "👍");
        let result = json!({"subtype": "external_tool_result", "request_id": "ext-call_1", "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "reacted 👍"}], "is_error": false});
        assert!(waiting.answer("ext-call_1", result));
        assert_eq!(call.await.unwrap(), ("reacted 👍".to_string(), false));
    }
}
