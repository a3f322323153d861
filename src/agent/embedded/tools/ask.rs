//! `AskUserQuestion`: offered to the model (it may try it) but always refused by the
//! policy, which tells the agent to ask in plain text instead.

use serde_json::json;

use super::{ToolClass, ToolSpec};

pub const NAME: &str = crate::policy::ASK_USER_QUESTION;

pub fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME,
        description: "Ask the person structured questions with options.",
        parameters: json!({
            "type": "object",
            "properties": {
                "questions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "question": {"type": "string"},
                            "options": {"type": "array", "items": {"type": "object", "properties": {
                                "label": {"type": "string"}, "description": {"type": "string"}}}},
                            "multiSelect": {"type": "boolean"}
                        },
                        "required": ["question", "options"]
                    }
                }
            },
            "required": ["questions"]
        }),
        class: ToolClass::ReadOnly,
    }
}
