//! `SdkMessage`: what a session's stream yields during a turn.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SdkMessage {
    /// First message of every turn.
    Init {
        agent_id: String,
        conversation_id: String,
        session_id: String,
        model: String,
        tools: Vec<String>,
    },
    /// A complete assistant message (one per model call that produced text).
    Assistant {
        content: String,
        /// Its transcript entry's id (`msg.uuid` on the SDK's wire): which reply
        /// this is, whoever reads it later.
        uuid: String,
    },
    /// The model's reasoning for one model call, when the endpoint sends it.
    Reasoning {
        content: String,
    },
    ToolCall {
        tool_call_id: String,
        tool_name: String,
        tool_input: Value,
    },
    ToolResult {
        tool_call_id: String,
        content: String,
        is_error: bool,
    },
    /// A tool call waits for a person's decision (shown as buttons or a prompt).
    ApprovalRequest {
        approval_id: String,
        tool_call_id: String,
        tool_name: String,
        /// Exactly what would run (configured secrets masked).
        summary: String,
        /// Whether `summary` shows the whole call; if not, only the operator may allow it.
        complete: bool,
        /// Milliseconds since the epoch.
        expires_at: u64,
        chat: Option<String>,
        requester: Option<String>,
    },
    /// How it ended: `allowed_once`, `allowed_always`, `denied`, `expired`, `cancelled`.
    ApprovalResolved {
        approval_id: String,
        outcome: crate::store::ApprovalState,
        decided_by: Option<String>,
        reason: Option<String>,
    },
    /// Partial output as it streams in.
    StreamEvent {
        event: StreamDelta,
    },
    /// Last message of every turn.
    Result(TurnResult),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "delta", rename_all = "snake_case")]
pub enum StreamDelta {
    Text(String),
    Reasoning(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered without asking for more tools.
    EndTurn,
    /// `max_steps` model calls were made and the model still wanted tools.
    MaxSteps,
    Cancelled,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model endpoint failed (unreachable, an HTTP error, a malformed reply).
    Model,
    /// switchboard itself failed (its store, a missing agent).
    Internal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    /// Adds one call's usage; a call whose server reported none makes the sum
    /// unknown (`None`), never a made-up zero.
    pub fn add(sum: &mut Option<Usage>, call: Option<Usage>) {
        *sum = match (*sum, call) {
            (Some(s), Some(c)) => Some(Usage {
                prompt_tokens: s.prompt_tokens + c.prompt_tokens,
                completion_tokens: s.completion_tokens + c.completion_tokens,
                total_tokens: s.total_tokens + c.total_tokens,
            }),
            _ => None,
        };
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    pub success: bool,
    /// The final assistant text of the turn.
    pub result: Option<String>,
    /// A human-readable reason when `success` is false.
    pub error: Option<String>,
    /// What failed, for callers that word their own message (chat channels).
    pub error_kind: Option<ErrorKind>,
    pub stop_reason: StopReason,
    pub agent_id: String,
    pub conversation_id: String,
    pub num_steps: u32,
    pub duration_ms: u64,
    /// Tokens used, summed over the turn's model calls; `None` (JSON `null`) when
    /// a server did not report them.
    pub usage: Option<Usage>,
}
