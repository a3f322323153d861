//! The tools the embedded agent can call: their schemas (as the model sees them) and
//! how each runs. Every call has passed `can_use_tool` before it gets here.

use std::sync::Arc;

use serde_json::{json, Value};

use super::memory_tools;
use crate::policy::ASK_USER_QUESTION;
use crate::store::{blocking, Store};

pub struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutcome {
    pub fn ok(content: impl Into<String>) -> Self {
        ToolOutcome { content: content.into(), is_error: false }
    }

    pub fn error(content: impl Into<String>) -> Self {
        ToolOutcome { content: content.into(), is_error: true }
    }
}

/// What tools may touch.
pub struct ToolEnv {
    pub store: Arc<dyn Store>,
    pub agent_id: String,
    /// Serialises read-modify-write of memory blocks across conversations.
    pub memory_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Tool definitions in the OpenAI `tools` format.
pub fn definitions() -> Vec<Value> {
    let mut all: Vec<(&str, &str, Value)> = memory_tools::definitions();
    all.push((
        ASK_USER_QUESTION,
        "Ask the person structured questions with options.",
        json!({
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
    ));
    all.into_iter()
        .map(|(name, description, parameters)| {
            json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}})
        })
        .collect()
}

pub fn names() -> Vec<String> {
    definitions().iter().filter_map(|d| d["function"]["name"].as_str().map(str::to_string)).collect()
}

pub async fn run(env: &ToolEnv, name: &str, input: Value) -> ToolOutcome {
    match name {
        memory_tools::INSERT | memory_tools::REPLACE | memory_tools::RETHINK => run_memory(env, name, input).await,
        ASK_USER_QUESTION => ToolOutcome::error(crate::policy::DEFAULT_ASK_USER_QUESTION_MESSAGE),
        other => ToolOutcome::error(format!("There is no tool named {other}. The tools are: {}.", names().join(", "))),
    }
}

async fn run_memory(env: &ToolEnv, name: &str, input: Value) -> ToolOutcome {
    let _guard = env.memory_lock.lock().await;
    let agent_id = env.agent_id.clone();
    let tool = name.to_string();
    let result = blocking(&env.store, move |store| {
        let blocks = store.blocks(&agent_id)?;
        match memory_tools::apply(&tool, &input, &blocks) {
            Ok(block) => {
                store.put_block(&agent_id, &block)?;
                Ok(ToolOutcome::ok(memory_tools::success_message(&block)))
            }
            Err(message) => Ok(ToolOutcome::error(message)),
        }
    })
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "memory tool could not use the store");
        ToolOutcome::error("Memory could not be read or saved; try again.")
    })
}
