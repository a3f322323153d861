//! The label values metrics may carry: enums with fixed spellings, so nothing
//! from a chat can become a label (a tool the model invents is `other`).

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// An enum whose variants encode as fixed lower-case label values.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum!(
    /// What an inbound event is.
    InboundKindLabel {
        Message => "message",
        Command => "command",
        Click => "click",
    }
);

label_enum!(
    /// What became of an inbound event at the front door.
    InboundOutcome {
        /// Journaled and queued.
        Accepted => "accepted",
        /// A redelivery of one already journaled.
        Duplicate => "duplicate",
        /// Not journaled (the store failed); the platform delivers it again.
        Failed => "failed",
    }
);

label_enum!(
    /// How a turn ended.
    TurnOutcome {
        Completed => "completed",
        Cancelled => "cancelled",
        MaxSteps => "max_steps",
        /// The model or the daemon failed.
        Failed => "failed",
    }
);

label_enum!(
    /// How a model call ended.
    ModelOutcome {
        Ok => "ok",
        Error => "error",
        Cancelled => "cancelled",
    }
);

label_enum!(
    /// The class of a failed model call (`none` when it did not fail).
    ModelError {
        None => "none",
        Unreachable => "unreachable",
        Timeout => "timeout",
        RateLimited => "rate_limited",
        ClientStatus => "client_status",
        ServerStatus => "server_status",
        Malformed => "malformed",
        Reported => "reported",
    }
);

label_enum!(
    /// Which tokens.
    TokenKind {
        Prompt => "prompt",
        Completion => "completion",
    }
);

label_enum!(
    /// A `can_use_tool` decision.
    ToolDecision {
        Allow => "allow",
        Deny => "deny",
        Ask => "ask",
    }
);

label_enum!(
    /// A tool, from the fixed list of built-in tools.
    ToolName {
        Bash => "Bash",
        Read => "Read",
        Write => "Write",
        Edit => "Edit",
        Glob => "Glob",
        Grep => "Grep",
        WebFetch => "WebFetch",
        MemoryInsert => "memory_insert",
        MemoryReplace => "memory_replace",
        MemoryRethink => "memory_rethink",
        ConversationSearch => "conversation_search",
        AskUserQuestion => "AskUserQuestion",
        /// Any other name (an SDK program's own tool, or one the model made up).
        Other => "other",
    }
);

impl ToolName {
    const ALL: [ToolName; 12] = [
        ToolName::Bash,
        ToolName::Read,
        ToolName::Write,
        ToolName::Edit,
        ToolName::Glob,
        ToolName::Grep,
        ToolName::WebFetch,
        ToolName::MemoryInsert,
        ToolName::MemoryReplace,
        ToolName::MemoryRethink,
        ToolName::ConversationSearch,
        ToolName::AskUserQuestion,
    ];

    /// The label for a tool called `name`.
    pub fn of(name: &str) -> ToolName {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name).unwrap_or(ToolName::Other)
    }
}

label_enum!(
    /// How an approval request ended.
    ApprovalEnd {
        Allowed => "allowed",
        Denied => "denied",
        Expired => "expired",
        Cancelled => "cancelled",
    }
);

label_enum!(
    /// What one delivery attempt of a reply part came to.
    DeliveryOutcome {
        Delivered => "delivered",
        /// Not taken now; kept for another round.
        Retried => "retried",
        /// Refused for good by the platform (a blocked bot, a deleted chat).
        Refused => "refused",
        /// Still undelivered when too old to send.
        Expired => "expired",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct InboundLabels {
    pub channel: String,
    pub kind: InboundKindLabel,
    pub outcome: InboundOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct TurnLabels {
    pub outcome: TurnOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ModelLabels {
    pub outcome: ModelOutcome,
    pub error: ModelError,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct TokenLabels {
    pub kind: TokenKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ToolLabels {
    pub tool: ToolName,
    pub decision: ToolDecision,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ApprovalLabels {
    pub end: ApprovalEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct DeliveryLabels {
    pub channel: String,
    pub outcome: DeliveryOutcome,
}

/// A channel's registered name (a fixed set for a configuration).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ChannelLabels {
    pub channel: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_built_in_tool_names_become_labels() {
        assert_eq!(ToolName::of("Bash"), ToolName::Bash);
        assert_eq!(ToolName::of("memory_rethink").as_str(), "memory_rethink");
        assert_eq!(ToolName::of("send_secret_to_chat_123"), ToolName::Other);
        assert_eq!(ToolName::of("bash"), ToolName::Other, "names are exact");
    }
}
