//! The `can_use_tool` decision every tool call passes before it runs, and the durable
//! approvals that let a person decide the calls that need one.

pub mod approvals;
mod engine;
pub mod rules;
pub mod shell;
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
    /// Reads files (the shared workdir); changes nothing.
    ReadOnly,
    /// Reads the calling conversation's own history; changes nothing.
    History,
    /// Creates or changes files.
    Edit,
    /// Runs commands.
    Execute,
    /// Reaches the network.
    Network,
    /// Edits the agent's own memory blocks.
    Memory,
}

/// How far a person is trusted, decided per message from the channel's access
/// block: `Admin` (the channel's admins and `[policy] approvers`), `User`
/// (allowlisted or paired people), `Guest` (anyone else who can talk: open DMs,
/// members of allowed groups who are not users). Ordered: `Guest < User < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Guest,
    User,
    Admin,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Guest => "guest",
            Tier::User => "user",
            Tier::Admin => "admin",
        }
    }
}

/// Who may change the agent's memory from where (for users; admins may, guests
/// never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryWrites {
    /// Writes run (as the permission mode lets memory tools run).
    Allowed,
    /// Every write asks an approver.
    Approval,
    /// Users may not write; admins only.
    AdminsOnly,
}

impl MemoryWrites {
    pub const NAMES: &'static [&'static str] = &["allowed", "approval", "admins"];

    pub fn parse(text: &str) -> Option<MemoryWrites> {
        match text {
            "allowed" => Some(MemoryWrites::Allowed),
            "approval" => Some(MemoryWrites::Approval),
            "admins" => Some(MemoryWrites::AdminsOnly),
            _ => None,
        }
    }
}

/// The most a tier's tool calls may do; no mode, rule or grant lifts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierLimit {
    /// No tool runs.
    Nothing,
    /// Only tools over the person's own conversation run (`conversation_search`);
    /// the shared workdir stays out of reach. Everything else is denied.
    Conversation,
    /// Read-only tools run; everything else is denied without asking.
    ReadOnly,
    /// Read-only tools run; everything else at most asks an approver (what the
    /// mode, a rule or a grant would allow is asked instead).
    Ask,
    /// Whatever the permission mode, rules and grants decide.
    Mode,
}

impl TierLimit {
    pub const NAMES: &'static [&'static str] = &["none", "conversation", "read_only", "ask", "mode"];

    pub fn parse(text: &str) -> Option<TierLimit> {
        match text {
            "none" => Some(TierLimit::Nothing),
            "conversation" => Some(TierLimit::Conversation),
            "read_only" => Some(TierLimit::ReadOnly),
            "ask" => Some(TierLimit::Ask),
            "mode" => Some(TierLimit::Mode),
            _ => None,
        }
    }
}

/// Who is asking for a tool, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolContext {
    pub agent_id: String,
    pub conversation_id: String,
    pub chat: Option<String>,
    pub sender: Option<String>,
    /// The sender's tier: its limit applies to every call of the turn.
    pub tier: Tier,
    /// Whether the chat is shared (a group, a channel) rather than the sender's DM.
    pub in_group: bool,
    /// Whether a guest's words are in the conversation (or anyone's, as a
    /// fetched page's): the model may be following them whoever's turn it is,
    /// so a memory edit asks first.
    pub guests_heard: bool,
}

impl Default for ToolContext {
    /// No chat and no sender: the operator's own session (the CLI, the SDK).
    fn default() -> Self {
        ToolContext {
            agent_id: String::new(),
            conversation_id: String::new(),
            chat: None,
            sender: None,
            tier: Tier::Admin,
            in_group: false,
            guests_heard: false,
        }
    }
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
