//! The transcript's JSONL export format
//! (`{"_v":2,"parent_id":…,"msg":{…}}` one a line).

use std::collections::HashSet;

use serde_json::Value;

use super::AgentError;
use crate::store::{Entry, Message, ENTRY_VERSION};

pub fn to_jsonl(entries: &[Entry]) -> String {
    let mut out = String::new();
    for entry in entries {
        // Serializing our own types cannot fail.
        out.push_str(&serde_json::to_string(entry).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Parses an export. Version 1 lines (no `parent_id`) get a synthesized chain; ids must
/// be unique and every parent must come earlier in the file.
pub fn parse_jsonl(text: &str) -> Result<Vec<Entry>, AgentError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut ids = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let n = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| AgentError::Invalid(format!("line {n} of the import is not a transcript entry: {why}"));
        let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let version = value.get("_v").and_then(Value::as_u64).unwrap_or(1);
        let entry = match version {
            2 => serde_json::from_value::<Entry>(value).map_err(|e| bad(e.to_string()))?,
            1 => {
                let msg = value.get("msg").cloned().ok_or_else(|| bad("no \"msg\" field".into()))?;
                let msg: Message = serde_json::from_value(msg).map_err(|e| bad(e.to_string()))?;
                let parent_id = entries.last().map(|e| e.id().to_string());
                Entry { version: ENTRY_VERSION, parent_id, msg }
            }
            other => return Err(bad(format!("unsupported format version {other}"))),
        };
        if let Some(parent) = &entry.parent_id {
            if !ids.contains(parent.as_str()) {
                return Err(bad(format!("its parent {parent} does not come before it")));
            }
        }
        if !ids.insert(entry.id().to_string()) {
            return Err(bad(format!("the id {} appears twice", entry.id())));
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(AgentError::Invalid("the import holds no transcript entries".into()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{text_content, MessageBody};

    fn chain(texts: &[&str]) -> Vec<(u64, Entry)> {
        let mut out: Vec<(u64, Entry)> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let parent = out.last().map(|(_, e)| e.id().to_string());
            out.push((i as u64, Entry::new(parent, MessageBody::User { content: text_content(*t) })));
        }
        out
    }

    #[test]
    fn jsonl_round_trips_and_rejects_bad_lines() {
        let entries: Vec<Entry> = chain(&["x", "y"]).into_iter().map(|(_, e)| e).collect();
        let text = to_jsonl(&entries);
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("{\"_v\":2,\"parent_id\":null,"));
        assert_eq!(parse_jsonl(&text).unwrap(), entries);

        let err = parse_jsonl(&format!("{text}not json\n")).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        let dup = format!("{}{}", text, text.lines().next().unwrap());
        assert!(parse_jsonl(&dup).unwrap_err().to_string().contains("appears twice"));
        let orphan = text.lines().nth(1).unwrap();
        assert!(parse_jsonl(orphan).unwrap_err().to_string().contains("does not come before"));
        assert!(parse_jsonl("\n").is_err());
    }

    #[test]
    fn version_one_lines_get_a_parent_chain() {
        let v1 = "{\"msg\":{\"id\":\"m1\",\"timestamp\":1,\"role\":\"user\",\"content\":[]}}\n{\"_v\":1,\"msg\":{\"id\":\"m2\",\"timestamp\":2,\"role\":\"user\",\"content\":[]}}\n";
        let entries = parse_jsonl(v1).unwrap();
        assert_eq!(entries[0].parent_id, None);
        assert_eq!(entries[1].parent_id.as_deref(), Some("m1"));
        assert_eq!(entries[1].version, 2);
    }
}
