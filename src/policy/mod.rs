//! The `can_use_tool` decision every tool call passes before it runs.

use async_trait::async_trait;
use serde_json::Value;

/// The tool the agent may try but that can never work in a chat.
pub const ASK_USER_QUESTION: &str = "AskUserQuestion";

pub const DEFAULT_ASK_USER_QUESTION_MESSAGE: &str = "AskUserQuestion is not available here: the person \
cannot answer structured questions in this chat. Ask your question in plain text in your reply instead, \
then end your turn and wait for their answer.";

/// Who is asking for a tool, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolContext {
    pub agent_id: String,
    pub conversation_id: String,
    pub chat: Option<String>,
    pub sender: Option<String>,
    pub sender_is_admin: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PermissionDecision {
    /// Run the tool, with `updated_input` instead of the model's input when given.
    Allow { updated_input: Option<Value> },
    /// Do not run it; the agent sees `message` as the tool's result.
    Deny { message: String },
}

#[async_trait]
pub trait CanUseTool: Send + Sync {
    async fn can_use_tool(&self, tool: &str, input: &Value, context: &ToolContext) -> PermissionDecision;
}

/// The foundation policy: everything runs except `AskUserQuestion` and the tools named
/// in `disallowed_tools` (exact names; argument patterns come with the full policy).
pub struct BasePolicy {
    pub ask_user_question_message: String,
    pub disallowed_tools: Vec<String>,
}

impl Default for BasePolicy {
    fn default() -> Self {
        BasePolicy { ask_user_question_message: DEFAULT_ASK_USER_QUESTION_MESSAGE.into(), disallowed_tools: Vec::new() }
    }
}

#[async_trait]
impl CanUseTool for BasePolicy {
    async fn can_use_tool(&self, tool: &str, _input: &Value, _context: &ToolContext) -> PermissionDecision {
        if tool == ASK_USER_QUESTION {
            return PermissionDecision::Deny { message: self.ask_user_question_message.clone() };
        }
        if self.disallowed_tools.iter().any(|t| t == tool) {
            return PermissionDecision::Deny {
                message: format!("{tool} is disallowed by this agent's configuration."),
            };
        }
        PermissionDecision::Allow { updated_input: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ask_user_question_is_denied_with_guidance_and_others_allowed() {
        let policy = BasePolicy::default();
        let ctx = ToolContext::default();
        match policy.can_use_tool(ASK_USER_QUESTION, &serde_json::json!({}), &ctx).await {
            PermissionDecision::Deny { message } => assert!(message.contains("plain text")),
            other => panic!("expected deny, got {other:?}"),
        }
        let allowed = policy.can_use_tool("memory_insert", &serde_json::json!({}), &ctx).await;
        assert_eq!(allowed, PermissionDecision::Allow { updated_input: None });
    }

    #[tokio::test]
    async fn disallowed_tools_are_denied_by_exact_name() {
        let policy = BasePolicy { disallowed_tools: vec!["memory_rethink".into()], ..Default::default() };
        let ctx = ToolContext::default();
        let denied = policy.can_use_tool("memory_rethink", &serde_json::json!({}), &ctx).await;
        assert!(matches!(denied, PermissionDecision::Deny { message } if message.contains("disallowed")));
        let allowed = policy.can_use_tool("memory_insert", &serde_json::json!({}), &ctx).await;
        assert_eq!(allowed, PermissionDecision::Allow { updated_input: None });
    }
}
