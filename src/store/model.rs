//! The records the store keeps: agents, memory blocks, conversations and transcript
//! entries. Transcript entries use the export format as they are stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Milliseconds since the epoch as `2026-11-21T19:49:51Z`.
pub fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemPrompt {
    Preset { preset: String, append: String },
    Custom { text: String, append: String },
}

impl SystemPrompt {
    pub const PRESETS: &'static [&'static str] = &["default", "minimal"];

    /// A preset when `value` names one, custom text otherwise.
    pub fn from_setting(value: &str, append: &str) -> Self {
        if Self::PRESETS.contains(&value.trim()) {
            SystemPrompt::Preset { preset: value.trim().to_string(), append: append.to_string() }
        } else {
            SystemPrompt::Custom { text: value.to_string(), append: append.to_string() }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    /// The model this agent uses; `None` follows `[llm] model`.
    pub model: Option<String>,
    pub system_prompt: SystemPrompt,
    pub default_conversation: String,
    pub created_at: u64,
}

pub const DEFAULT_BLOCK_LIMIT: usize = 5000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryBlock {
    pub label: String,
    pub value: String,
    pub description: String,
    pub limit: usize,
    pub read_only: bool,
}

impl MemoryBlock {
    pub fn new(label: &str, value: &str, description: &str) -> Self {
        MemoryBlock {
            label: label.into(),
            value: value.into(),
            description: description.into(),
            limit: DEFAULT_BLOCK_LIMIT,
            read_only: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub agent_id: String,
    pub created_at: u64,
    pub updated_at: u64,
}

/// One transcript line: `{"_v":2,"parent_id":…,"msg":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "_v")]
    pub version: u32,
    pub parent_id: Option<String>,
    pub msg: Message,
}

pub const ENTRY_VERSION: u32 = 2;

impl Entry {
    pub fn new(parent_id: Option<String>, body: MessageBody) -> Self {
        Entry {
            version: ENTRY_VERSION,
            parent_id,
            msg: Message { id: format!("msg-{}", uuid::Uuid::new_v4()), timestamp: now_ms(), body },
        }
    }

    pub fn id(&self) -> &str {
        &self.msg.id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub timestamp: u64,
    #[serde(flatten)]
    pub body: MessageBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum MessageBody {
    User {
        content: Vec<ContentPart>,
    },
    Assistant {
        content: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
    },
    Tool {
        tool_call_id: String,
        name: String,
        content: Vec<ContentPart>,
        #[serde(default)]
        is_error: bool,
    },
    /// Kept in the transcript, not sent to the model as a message.
    Custom {
        kind: String,
        payload: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
}

/// Joins the text parts of a content list.
pub fn text_of(parts: &[ContentPart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => text.as_str(),
        })
        .collect::<Vec<_>>()
        .join("")
}

pub fn text_content(text: impl Into<String>) -> Vec<ContentPart> {
    vec![ContentPart::Text { text: text.into() }]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments exactly as the model sent them (JSON text, possibly malformed).
    pub arguments: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_serializes_to_the_v2_envelope() {
        let mut e = Entry::new(Some("msg-parent".into()), MessageBody::User { content: text_content("hi") });
        e.msg.id = "msg-1".into();
        e.msg.timestamp = 7;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"_v":2,"parent_id":"msg-parent","msg":{"id":"msg-1","timestamp":7,"role":"user","content":[{"type":"text","text":"hi"}]}})
        );
        let back: Entry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn system_prompt_setting_picks_preset_or_custom() {
        assert!(matches!(SystemPrompt::from_setting("minimal", ""), SystemPrompt::Preset { .. }));
        assert!(matches!(SystemPrompt::from_setting("You are a pirate.", "x"), SystemPrompt::Custom { .. }));
    }
}
