//! The `AgentBackend` trait: what any agent runtime offers switchboard.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AgentError, SdkMessage, Session, TurnResult, UserInput};
use crate::policy::approvals::{Choice, DecideError, Decided, Decider};
use crate::policy::{CanUseTool, Tier};
use crate::store::{
    AgentRecord, ApprovalRecord, AuditRecord, ConversationRecord, Entry, Grant, MemoryBlock, MemoryEdit, SystemPrompt,
};

#[derive(Debug, Clone, Default)]
pub struct CreateAgentOptions {
    /// Defaults to `[agent] name`.
    pub name: Option<String>,
    pub model: Option<String>,
    /// Defaults to `[agent] persona`.
    pub persona: Option<String>,
    /// Defaults to `[agent] human`.
    pub human: Option<String>,
    /// Extra blocks beside persona and human.
    pub memory: Vec<MemoryBlock>,
    /// Which of the default blocks (`persona`, `human`) to create; `None` = both.
    /// A block given in `memory` is created whatever this says.
    pub default_blocks: Option<Vec<String>>,
    /// A preset name or custom text; defaults to `[agent] system_prompt`.
    pub system_prompt: Option<String>,
    pub system_prompt_append: Option<String>,
}

/// Who is talking and how tool calls are judged in this session.
#[derive(Clone)]
pub struct SessionOptions {
    /// Replaces the backend's default `can_use_tool` policy.
    pub can_use_tool: Option<Arc<dyn CanUseTool>>,
    pub chat: Option<String>,
    pub sender: Option<String>,
    /// How far the sender is trusted. The gateway always sets it from the
    /// channel's access rules.
    pub tier: Tier,
    /// Whether the chat is shared (a group) rather than the sender's DM.
    pub in_group: bool,
    /// Where the tools work instead of `[agent] workdir` (an SDK session works in
    /// its process's directory); confined the same way.
    pub workdir: Option<std::path::PathBuf>,
    /// Tools the session's program runs itself, offered beside the built-in ones.
    pub external_tools: Option<Arc<dyn ExternalTools>>,
    /// With replicas: the lease on the conversation's turn. The session's
    /// transcript entries are stored only while it is held, so a replica that
    /// lost the conversation adds nothing to it.
    pub fence: Option<crate::store::Lease>,
}

/// Tools a session's program runs itself (the SDK's `tools`). Their calls pass
/// `can_use_tool` like any other (judged as commands), then run through [`ExternalTools::call`].
#[async_trait]
pub trait ExternalTools: Send + Sync {
    /// Their definitions in the chat-completions `tools` shape, read at every model call.
    fn definitions(&self) -> Vec<serde_json::Value>;
    /// Whether `name` is one of them.
    fn has(&self, name: &str) -> bool;
    /// Runs one call; the text the model sees and whether it is an error.
    async fn call(&self, name: &str, tool_call_id: &str, input: serde_json::Value) -> (String, bool);
}

impl Default for SessionOptions {
    /// The operator's own session (the CLI, a program using the SDK): no chat, no
    /// sender, the admin tier.
    fn default() -> Self {
        SessionOptions {
            can_use_tool: None,
            chat: None,
            sender: None,
            tier: Tier::Admin,
            in_group: false,
            workdir: None,
            external_tools: None,
            fence: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentDetails {
    pub agent: AgentRecord,
    pub blocks: Vec<MemoryBlock>,
}

/// A page of a transcript, walking back from the newest entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// Return entries older than this entry id; `None` starts at the newest.
    pub before: Option<String>,
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { before: None, limit: 50 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// Oldest first within the page.
    pub messages: Vec<Entry>,
    /// Pass as `before` for the next (older) page; `None` when this was the oldest.
    pub next_before: Option<String>,
}

#[async_trait]
pub trait AgentBackend: Send + Sync {
    async fn create_agent(&self, options: CreateAgentOptions) -> Result<AgentDetails, AgentError>;
    async fn agent(&self, id: &str) -> Result<AgentDetails, AgentError>;
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, AgentError>;
    async fn delete_agent(&self, id: &str) -> Result<(), AgentError>;
    /// The agent used when none is named: created from the configuration on first use.
    async fn default_agent(&self) -> Result<AgentRecord, AgentError>;

    /// Sets the agent's model (`None` follows `[llm] model`).
    async fn set_model(&self, agent_id: &str, model: Option<String>) -> Result<AgentRecord, AgentError>;

    /// Replaces the agent's system prompt (kept on the agent).
    async fn set_system_prompt(&self, agent_id: &str, prompt: SystemPrompt) -> Result<AgentRecord, AgentError>;

    async fn memory_block(&self, agent_id: &str, label: &str) -> Result<MemoryBlock, AgentError>;
    /// Sets a block's value (creating the block if needed) as the operator: read-only
    /// blocks may be changed here, the character limit still holds.
    async fn set_memory_block(&self, agent_id: &str, label: &str, value: &str) -> Result<MemoryBlock, AgentError>;
    /// Every recorded edit of a block, oldest first: who, from where, when.
    async fn memory_history(&self, agent_id: &str, label: &str) -> Result<Vec<MemoryEdit>, AgentError>;

    /// A session on a new conversation of the agent.
    async fn create_session(&self, agent_id: &str, options: SessionOptions) -> Result<Session, AgentError>;
    /// `agent-…` resumes the agent's default conversation, `conv-…` that conversation.
    async fn resume_session(&self, id: &str, options: SessionOptions) -> Result<Session, AgentError>;

    /// Adds a user message to the conversation without a turn (a group the agent only
    /// listens to). A message with an id already there is not added again.
    async fn record_message(&self, conversation_id: &str, input: UserInput) -> Result<(), AgentError>;
    /// The agent's reply to the message recorded as `input_id` (see
    /// [`RecordedReply`]); `None` when that message is not recorded or nothing
    /// answered it yet. Reads only the part of the transcript after the message.
    async fn reply_after(&self, conversation_id: &str, input_id: &str) -> Result<Option<RecordedReply>, AgentError>;
    /// The reply the assistant entry `entry_id` is part of: its words from the
    /// first assistant entry with text after the last user message before it (a
    /// turn resumed after a crash continues a reply an earlier attempt began).
    async fn reply_of(&self, conversation_id: &str, entry_id: &str) -> Result<Option<RecordedReply>, AgentError>;

    async fn conversation(&self, id: &str) -> Result<ConversationRecord, AgentError>;
    async fn list_conversations(&self, agent_id: Option<&str>) -> Result<Vec<ConversationRecord>, AgentError>;
    async fn list_messages(&self, conversation_id: &str, page: PageRequest) -> Result<MessagePage, AgentError>;
    /// Every transcript entry of the conversation in append order.
    async fn export_conversation(&self, id: &str) -> Result<Vec<Entry>, AgentError>;
    /// Creates a new conversation on the agent holding exactly these entries.
    async fn import_conversation(&self, agent_id: &str, entries: Vec<Entry>) -> Result<ConversationRecord, AgentError>;

    /// A person's answer to an approval request. When no turn in this process was
    /// waiting for it (`waiter_woken` false), resume the conversation to continue.
    async fn decide_approval(
        &self,
        id: &str,
        decider: &Decider,
        choice: Choice,
        reason: Option<String>,
    ) -> Result<Decided, DecideError>;
    /// Notes that a guest's words reach the conversation: sessions on it other
    /// than guests' then ask before any memory edit
    /// ([`crate::policy::ToolContext::guests_heard`]), and so does a turn whose
    /// search across conversations reads it (a turn notes a fetched page itself).
    /// Called before the words are recorded.
    async fn note_guest_words(&self, conversation_id: &str) -> Result<(), AgentError>;
    /// Notes that a chat is shown the request cut (its channel cannot show it
    /// whole): from then on no chat may allow it, only the operator.
    async fn approval_shown_cut(&self, id: &str) -> Result<(), AgentError>;
    /// Every approval, oldest first.
    async fn approvals(&self) -> Result<Vec<ApprovalRecord>, AgentError>;
    /// One approval, as it stands now.
    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, AgentError>;
    /// Cancels the conversation's pending approvals (only those `requester` asked
    /// for, when given) with `reason`; returns them.
    async fn cancel_approvals(
        &self,
        conversation_id: &str,
        requester: Option<&str>,
        reason: &str,
    ) -> Result<Vec<ApprovalRecord>, AgentError>;
    async fn audit_log(&self) -> Result<Vec<AuditRecord>, AgentError>;
    /// "Always allow here" grants still in force, of one chat or of all, oldest first.
    async fn grants(&self, chat: Option<&str>) -> Result<Vec<Grant>, AgentError>;
    /// Takes a grant back; whether there was one with this id.
    async fn revoke_grant(&self, id: &str) -> Result<bool, AgentError>;
    /// After a restart: resolves approvals that expired while the process was down
    /// (denied) and returns them; still-pending ones wait for a decision.
    async fn recover(&self) -> Result<Vec<ApprovalRecord>, AgentError>;
    /// Forgets what is past its retention (decided approval requests, with their
    /// index; the audit log keeps every decision); returns how many records went.
    async fn prune(&self) -> Result<usize, AgentError>;
}

/// The agent's words that answered a message: from the first assistant entry with
/// text after it, until the next message the agent answered. Messages recorded
/// back to back are answered by the same reply, so its `entry_id` identifies the
/// reply whichever of them asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedReply {
    /// The transcript id of the reply's first assistant entry.
    pub entry_id: String,
    /// Everything it said, parts joined by a blank line.
    pub text: String,
}

/// One-shot: a fresh conversation on the agent (the default agent when `None`), one
/// turn, and its result.
pub async fn prompt(backend: &dyn AgentBackend, text: &str, agent_id: Option<&str>) -> Result<TurnResult, AgentError> {
    let agent_id = match agent_id {
        Some(id) => id.to_string(),
        None => backend.default_agent().await?.id,
    };
    let mut session = backend.create_session(&agent_id, SessionOptions::default()).await?;
    session.send(text)?;
    while let Some(message) = session.next().await {
        if let SdkMessage::Result(result) = message {
            return Ok(result);
        }
    }
    Err(AgentError::Invalid("the turn ended without a result".into()))
}
