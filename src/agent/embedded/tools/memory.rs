//! The memory tools, with Letta's semantics: `memory_insert`, `memory_replace`,
//! `memory_rethink`. A bad edit is a tool error the agent sees, never a crash.

use serde_json::{json, Value};

use super::{ToolClass, ToolEnv, ToolOutcome, ToolSpec};
use crate::store::{blocking, record_memory_edit, MemoryBlock, MemoryEdit};

pub const INSERT: &str = "memory_insert";
pub const REPLACE: &str = "memory_replace";
pub const RETHINK: &str = "memory_rethink";

pub fn specs() -> Vec<ToolSpec> {
    let spec = |name, description, parameters| ToolSpec { name, description, parameters, class: ToolClass::Memory };
    vec![
        spec(
            INSERT,
            "Insert text into a memory block at a line. Use it to add new facts.",
            json!({
                "type": "object",
                "properties": {
                    "label": {"type": "string", "description": "The block to edit, e.g. human or persona."},
                    "new_str": {"type": "string", "description": "The text to insert."},
                    "insert_line": {"type": "integer", "description": "Insert before this 0-based line; -1 (the default) appends at the end."}
                },
                "required": ["label", "new_str"]
            }),
        ),
        spec(
            REPLACE,
            "Replace one exact occurrence of old_str in a memory block with new_str (empty new_str deletes it).",
            json!({
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "old_str": {"type": "string", "description": "Text that occurs exactly once in the block."},
                    "new_str": {"type": "string"}
                },
                "required": ["label", "old_str", "new_str"]
            }),
        ),
        spec(
            RETHINK,
            "Rewrite a memory block completely (creates the block if it does not exist).",
            json!({
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "new_memory": {"type": "string", "description": "The block's whole new value."}
                },
                "required": ["label", "new_memory"]
            }),
        ),
    ]
}

/// The result of an edit: the new block to store, or why it was refused.
pub type Edit = Result<MemoryBlock, String>;

/// Applies `tool` to the agent's blocks. Pure: storing the result is the caller's job.
pub fn apply(tool: &str, input: &Value, blocks: &[MemoryBlock]) -> Edit {
    let label = string_arg(input, "label")?;
    let existing = blocks.iter().find(|b| b.label == label);
    let block = match (tool, existing) {
        (RETHINK, None) if !valid_label(&label) => {
            return Err(format!("'{label}' cannot be a block's label: use 1-64 letters, digits, '_' or '-'."));
        }
        (RETHINK, None) => MemoryBlock::new(&label, "", "Created by the agent."),
        (_, Some(b)) => b.clone(),
        (_, None) => {
            let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
            return Err(format!("There is no memory block '{label}'. The blocks are: {}.", labels.join(", ")));
        }
    };
    if block.read_only {
        return Err(format!("The memory block '{label}' is read-only."));
    }
    let new_value = match tool {
        INSERT => insert(&block.value, &string_arg(input, "new_str")?, input.get("insert_line"))?,
        REPLACE => replace(&block.value, &string_arg(input, "old_str")?, &string_arg(input, "new_str")?, &label)?,
        RETHINK => string_arg(input, "new_memory")?,
        other => return Err(format!("{other} is not a memory tool.")),
    };
    let len = new_value.chars().count();
    if len > block.limit {
        return Err(format!(
            "The edit would make '{label}' {len} characters long, over its limit of {}. Shorten or condense it.",
            block.limit
        ));
    }
    Ok(MemoryBlock { value: new_value, ..block })
}

/// A label that is a plain word: it is written into the prompt's markup.
pub fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len()) && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn success_message(block: &MemoryBlock) -> String {
    format!(
        "The memory block '{}' was updated ({}/{} characters).",
        block.label,
        block.value.chars().count(),
        block.limit
    )
}

fn insert(value: &str, new_str: &str, line: Option<&Value>) -> Result<String, String> {
    let mut lines: Vec<&str> = if value.is_empty() { Vec::new() } else { value.split('\n').collect() };
    let at = match line {
        None | Some(Value::Null) => -1,
        Some(v) => v.as_i64().ok_or("insert_line must be an integer.")?,
    };
    let index = if at == -1 {
        lines.len()
    } else {
        usize::try_from(at).map_err(|_| "insert_line must be -1 or a line number.")?
    };
    if index > lines.len() {
        return Err(format!("insert_line {at} is past the end of the block ({} lines).", lines.len()));
    }
    lines.insert(index, new_str);
    Ok(lines.join("\n"))
}

fn replace(value: &str, old: &str, new: &str, label: &str) -> Result<String, String> {
    if old.is_empty() {
        return Err("old_str must not be empty.".into());
    }
    match value.matches(old).count() {
        0 => Err(format!("old_str was not found in '{label}'; it must match the block's text exactly.")),
        1 => Ok(value.replacen(old, new, 1)),
        n => Err(format!("old_str occurs {n} times in '{label}'; include more context so it matches once.")),
    }
}

fn string_arg(input: &Value, name: &str) -> Result<String, String> {
    match input.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{name} must be a string.")),
        None => Err(format!("{name} is required.")),
    }
}

pub async fn run(env: &ToolEnv, name: &str, input: Value) -> ToolOutcome {
    let _guard = env.memory_lock.lock().await;
    let agent_id = env.agent_id.clone();
    let tool = name.to_string();
    let (sender, tier, chat) = (env.sender.clone(), env.tier, env.chat.clone());
    // Replicas edit the same blocks: one process at a time reads and writes them.
    let section = format!("memory:{agent_id}");
    let edit = blocking(&env.store, move |store| {
        let blocks = store.blocks(&agent_id)?;
        match apply(&tool, &input, &blocks) {
            Ok(block) => {
                let before =
                    blocks.iter().find(|b| b.label == block.label).map(|b| b.value.clone()).unwrap_or_default();
                store.put_block(&agent_id, &block)?;
                let edit = MemoryEdit::new(&block.label, &tool, sender, tier, chat, &before, &block.value);
                record_memory_edit(store, &agent_id, &edit)?;
                Ok(ToolOutcome::ok(success_message(&block)))
            }
            Err(message) => Ok(ToolOutcome::error(message)),
        }
    });
    let result = crate::store::exclusively(&env.store, &section, || edit).await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "memory tool could not use the store");
        ToolOutcome::error("Memory could not be read or saved; try again.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> Vec<MemoryBlock> {
        let mut ro = MemoryBlock::new("rules", "fixed", "");
        ro.read_only = true;
        let mut small = MemoryBlock::new("small", "abc", "");
        small.limit = 5;
        vec![MemoryBlock::new("human", "Name: Ada\nLikes: tea", ""), ro, small]
    }

    #[test]
    fn insert_at_end_start_and_middle() {
        let b = blocks();
        let v = |input: Value| apply(INSERT, &input, &b).unwrap().value;
        assert_eq!(v(json!({"label":"human","new_str":"City: Oslo"})), "Name: Ada\nLikes: tea\nCity: Oslo");
        assert_eq!(v(json!({"label":"human","new_str":"#","insert_line":0})), "#\nName: Ada\nLikes: tea");
        assert_eq!(v(json!({"label":"human","new_str":"#","insert_line":1})), "Name: Ada\n#\nLikes: tea");
        assert!(apply(INSERT, &json!({"label":"human","new_str":"#","insert_line":9}), &b)
            .unwrap_err()
            .contains("past the end"));
    }

    #[test]
    fn replace_needs_exactly_one_match() {
        let b = blocks();
        let r = apply(REPLACE, &json!({"label":"human","old_str":"tea","new_str":"coffee"}), &b).unwrap();
        assert_eq!(r.value, "Name: Ada\nLikes: coffee");
        assert!(apply(REPLACE, &json!({"label":"human","old_str":"milk","new_str":"x"}), &b)
            .unwrap_err()
            .contains("not found"));
        assert!(apply(REPLACE, &json!({"label":"human","old_str":"a","new_str":"x"}), &b)
            .unwrap_err()
            .contains("times"));
    }

    #[test]
    fn limits_read_only_and_unknown_labels_are_tool_errors() {
        let b = blocks();
        assert!(apply(RETHINK, &json!({"label":"small","new_memory":"toolong"}), &b)
            .unwrap_err()
            .contains("limit of 5"));
        assert!(apply(RETHINK, &json!({"label":"rules","new_memory":"x"}), &b).unwrap_err().contains("read-only"));
        assert!(apply(INSERT, &json!({"label":"nope","new_str":"x"}), &b).unwrap_err().contains("human, rules, small"));
        assert!(apply(INSERT, &json!({"label":"human"}), &b).unwrap_err().contains("new_str is required"));
        let created = apply(RETHINK, &json!({"label":"project","new_memory":"switchboard"}), &b).unwrap();
        assert_eq!((created.label.as_str(), created.value.as_str()), ("project", "switchboard"));
    }
}
