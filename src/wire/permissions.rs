//! `can_use_tool` for an SDK session (`letta-code-wire.md` §7): the policy built
//! from the configuration and the session's flags decides first (disallowed, the
//! mode, allowed, read-only); what it would ask a person is asked of the SDK with
//! a `can_use_tool` control request, and the tool waits for the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::policy::{CanUseTool, PermissionDecision, ToolContext};

/// Answers the SDK owes the engine, by request id.
#[derive(Clone, Default)]
pub struct Waiting {
    slots: Arc<Mutex<Slots>>,
}

#[derive(Default)]
struct Slots {
    open: HashMap<String, oneshot::Sender<Value>>,
    /// No question may be asked now (the turn was interrupted, or the SDK can no
    /// longer answer): a new one is refused at once.
    closed: bool,
}

impl Waiting {
    /// `None` when questions are closed.
    pub(super) fn open(&self, id: &str) -> Option<oneshot::Receiver<Value>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.closed {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        slots.open.insert(id.to_string(), tx);
        Some(rx)
    }

    /// Questions may be asked again (a new turn starts and the SDK is there).
    pub fn reopen(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).closed = false;
    }

    /// Hands a `control_response` to the request waiting for it; `false` when
    /// nothing waits under that id (a stale or forged answer is dropped).
    pub fn answer(&self, id: &str, response: Value) -> bool {
        let slot = self.slots.lock().unwrap_or_else(|p| p.into_inner()).open.remove(id);
        slot.is_some_and(|tx| tx.send(response).is_ok())
    }

    /// Ends every wait unanswered and refuses new questions until [`Waiting::reopen`]
    /// (an interrupt, or the end of the SDK's input): each tool is refused.
    pub fn abandon_all(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.closed = true;
        slots.open.clear();
    }
}

/// What the model hears when nobody can decide any more.
pub(super) const UNANSWERED: &str =
    "The turn was interrupted (or the application left) before this tool call was decided; it did not run.";

/// The session's `can_use_tool`.
pub struct AskTheSdk {
    pub policy: Arc<dyn CanUseTool>,
    pub out: mpsc::UnboundedSender<Value>,
    pub waiting: Waiting,
}

#[async_trait]
impl CanUseTool for AskTheSdk {
    async fn can_use_tool(&self, tool: &str, input: &Value, context: &ToolContext) -> PermissionDecision {
        match self.policy.can_use_tool(tool, input, context).await {
            PermissionDecision::Ask => {}
            decided => return decided,
        }
        let request_id = format!("perm-{}", uuid::Uuid::new_v4());
        let Some(answer) = self.waiting.open(&request_id) else {
            return PermissionDecision::Deny { message: UNANSWERED.into() };
        };
        let request = json!({
            "type": "control_request",
            "request_id": request_id,
            "request": {
                "subtype": "can_use_tool",
                "tool_name": tool,
                "input": input,
                "permission_suggestions": [],
                "blocked_path": null,
            },
        });
        if self.out.send(request).is_err() {
            return deny("the session ended before this tool call was decided");
        }
        match answer.await {
            Ok(response) => decision(&response),
            Err(_) => PermissionDecision::Deny { message: UNANSWERED.into() },
        }
    }
}

/// The SDK's answer (`response.response` of its `control_response`) as a decision.
/// Anything but a well-formed allow is a denial.
pub fn decision(response: &Value) -> PermissionDecision {
    let body = &response["response"];
    match body["behavior"].as_str() {
        Some("allow") => match &body["updatedInput"] {
            Value::Null => PermissionDecision::Allow { updated_input: None },
            replaced @ Value::Object(_) => PermissionDecision::Allow { updated_input: Some(replaced.clone()) },
            _ => deny("the application's answer replaced the tool's input with something that is not an object"),
        },
        Some("deny") => deny(body["message"].as_str().unwrap_or("Denied by canUseTool callback")),
        _ if response["subtype"] == "error" => {
            deny(response["error"].as_str().unwrap_or("the application could not decide"))
        }
        _ => deny("the application's answer was not understood"),
    }
}

fn deny(reason: &str) -> PermissionDecision {
    PermissionDecision::Deny { message: format!("Error: request to call tool denied. User reason: {reason}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_decisions_and_anything_odd_is_a_denial() {
        let allow =
            json!({"subtype":"success","response":{"behavior":"allow","updatedInput":null,"updatedPermissions":[]}});
        assert_eq!(decision(&allow), PermissionDecision::Allow { updated_input: None });
        let replaced =
            json!({"subtype":"success","response":{"behavior":"allow","updatedInput":{"answers":{"q":"a"}}}});
        assert_eq!(
            decision(&replaced),
            PermissionDecision::Allow { updated_input: Some(json!({"answers":{"q":"a"}})) }
        );
        let denied =
            json!({"subtype":"success","response":{"behavior":"deny","message":"Destructive","interrupt":false}});
        let PermissionDecision::Deny { message } = decision(&denied) else { panic!() };
        assert_eq!(message, "Error: request to call tool denied. User reason: Destructive");
        for odd in [
            json!({}),
            json!({"response":{"behavior":"maybe"}}),
            json!({"response":{"behavior":"allow","updatedInput":"x"}}),
        ] {
            assert!(matches!(decision(&odd), PermissionDecision::Deny { .. }), "{odd}");
        }
    }

    #[tokio::test]
    async fn a_stale_answer_is_dropped_and_an_abandoned_wait_is_a_refusal() {
        let waiting = Waiting::default();
        assert!(!waiting.answer("perm-unknown", json!({})));
        let rx = waiting.open("perm-1").unwrap();
        waiting.abandon_all();
        assert!(rx.await.is_err());
        assert!(waiting.open("perm-late").is_none(), "closed until reopened");
        waiting.reopen();
        let rx = waiting.open("perm-2").unwrap();
        assert!(waiting.answer("perm-2", json!({"ok": true})));
        assert_eq!(rx.await.unwrap(), json!({"ok": true}));
        assert!(!waiting.answer("perm-2", json!({})), "an answer is taken once");
    }
}
