//! The `can_use_tool` decision every tool call passes before it runs, and the durable
//! approvals that let a person decide the calls that need one.

pub mod approvals;
mod engine;
pub mod rules;
pub mod summary;

pub use engine::Policy;

use async_trait::async_trait;
use serde_json::Value;

/// The tool the agent may try but that can never work in a chat.
pub const ASK_USER_QUESTION: &str = "AskUserQuestion";

pub const DEFAULT_ASK_USER_QUESTION_MESSAGE: &str = "AskUserQuestion is not available here: the person \
cannot answer structured questions in this chat. Ask your question in plain text in your reply instead, \
then end your turn and wait for their answer.";

/// What a tool can do, which is what permission modes judge it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolClass {
    /// Reads files or history; changes nothing.
    ReadOnly,
    /// Creates or changes files.
    Edit,
    /// Runs commands.
    Execute,
    /// Reaches the network.
    Network,
    /// Edits the agent's own memory blocks.
    Memory,
}

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
    /// A person in the chat decides (see [`approvals`]).
    Ask,
}

#[async_trait]
pub trait CanUseTool: Send + Sync {
    async fn can_use_tool(&self, tool: &str, input: &Value, context: &ToolContext) -> PermissionDecision;
}
