//! Records the policy keeps: approval requests, "always allow here" grants and the
//! audit log of decisions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    AllowedOnce,
    AllowedAlways,
    Denied,
    Expired,
    /// Denied because the turn was cancelled (`/cancel`, Ctrl-C).
    Cancelled,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::AllowedOnce => "allowed_once",
            ApprovalState::AllowedAlways => "allowed_always",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }
}

/// A tool call waiting for (or decided by) a person. Stored before anyone sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Unguessable: `apr-` and 128 random bits.
    pub id: String,
    pub agent_id: String,
    pub conversation_id: String,
    /// The exact call: the assistant entry that made it and its position there (the
    /// model's `tool_call_id` alone is not guaranteed unique).
    #[serde(default)]
    pub call_key: String,
    pub tool_call_id: String,
    pub tool: String,
    pub input: Value,
    /// Exactly what would run, as people see it (known secrets masked).
    pub summary: String,
    /// Whether `summary` shows the whole call; a chat cannot allow it otherwise.
    #[serde(default)]
    pub complete: bool,
    pub chat: Option<String>,
    pub requester: Option<String>,
    /// How far the requester was trusted when asking.
    #[serde(default)]
    pub requester_tier: Option<crate::policy::Tier>,
    /// Whether it was asked in a shared chat (a group).
    #[serde(default)]
    pub in_group: bool,
    pub created_at: u64,
    pub expires_at: u64,
    pub state: ApprovalState,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub reason: Option<String>,
}

/// "Always allow here": this tool, for exactly this subject (the command, path or
/// URL that was shown), runs without asking in this chat, for requesters of this
/// tier or higher, until it expires or is revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// `grt-` and 8 hex characters, for listing and revoking.
    pub id: String,
    pub chat: String,
    pub tool: String,
    /// What it covers, exactly: see `policy::grant_subject`.
    pub subject: String,
    /// The lowest tier it serves (the tier of the person who asked).
    pub tier: crate::policy::Tier,
    pub granted_by: String,
    pub granted_at: u64,
    pub expires_at: u64,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: u64,
    pub approval_id: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub chat: Option<String>,
    pub tool: String,
    pub summary: String,
    /// `allowed_once`, `allowed_always`, `denied`, `expired`, `cancelled`, or
    /// `refused` (someone not entitled tried to decide; nothing changed).
    pub outcome: String,
    pub actor: Option<String>,
    /// For the operator: the OS user and process the decision came from.
    #[serde(default)]
    pub via: Option<String>,
    pub reason: Option<String>,
}
