//! Turns the transcript into the messages sent to the model: everything after the
//! last compaction's cut, with that compaction's summary, and tool calls that never
//! got a result (a crash mid-turn) answered so the request stays valid.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::store::{text_of, Entry, MessageBody};

pub const COMPACTION_KIND: &str = "compaction";

/// The part of the transcript the model sees.
pub struct Window {
    pub summary: Option<String>,
    /// Entries after the cut, custom entries excluded.
    pub entries: Vec<Entry>,
}

pub fn window(path: &[Entry]) -> Window {
    let last_compaction =
        path.iter().rposition(|e| matches!(&e.msg.body, MessageBody::Custom { kind, .. } if kind == COMPACTION_KIND));
    let (summary, start) = match last_compaction {
        None => (None, 0),
        Some(at) => {
            let MessageBody::Custom { payload, .. } = &path[at].msg.body else { unreachable!() };
            let summary = payload.get("summary").and_then(Value::as_str).map(str::to_string);
            let kept = payload.get("first_kept_id").and_then(Value::as_str);
            let start = kept.and_then(|id| path.iter().position(|e| e.id() == id)).unwrap_or(at + 1);
            (summary, start)
        }
    };
    let entries = path[start..].iter().filter(|e| !matches!(e.msg.body, MessageBody::Custom { .. })).cloned().collect();
    Window { summary, entries }
}

pub const INTERRUPTED_TOOL_RESULT: &str = "The tool call was interrupted and did not complete.";

pub fn to_model_messages(entries: &[Entry]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut unanswered: Vec<String> = Vec::new();
    for entry in entries {
        match &entry.msg.body {
            MessageBody::Tool { tool_call_id, content, .. } => {
                // A result whose call is not the one being answered would be rejected.
                if let Some(i) = unanswered.iter().position(|id| id == tool_call_id) {
                    unanswered.remove(i);
                    out.push(json!({"role": "tool", "tool_call_id": tool_call_id, "content": text_of(content)}));
                }
            }
            MessageBody::User { content } => {
                answer_interrupted(&mut unanswered, &mut out);
                out.push(json!({"role": "user", "content": text_of(content)}));
            }
            MessageBody::Assistant { content, tool_calls, .. } => {
                answer_interrupted(&mut unanswered, &mut out);
                let text = text_of(content);
                if tool_calls.is_empty() && text.is_empty() {
                    continue;
                }
                let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                        .collect();
                    let mut seen = HashSet::new();
                    unanswered =
                        tool_calls.iter().filter(|c| seen.insert(c.id.clone())).map(|c| c.id.clone()).collect();
                }
                out.push(message);
            }
            MessageBody::Custom { .. } => {}
        }
    }
    answer_interrupted(&mut unanswered, &mut out);
    out
}

fn answer_interrupted(unanswered: &mut Vec<String>, out: &mut Vec<Value>) {
    for id in unanswered.drain(..) {
        out.push(json!({"role": "tool", "tool_call_id": id, "content": INTERRUPTED_TOOL_RESULT}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{text_content, ToolCall};

    fn chain(bodies: Vec<MessageBody>) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for body in bodies {
            let parent = out.last().map(|e| e.id().to_string());
            out.push(Entry::new(parent, body));
        }
        out
    }

    fn user(t: &str) -> MessageBody {
        MessageBody::User { content: text_content(t) }
    }

    #[test]
    fn interrupted_tool_calls_get_a_result_and_orphans_are_dropped() {
        let call = ToolCall { id: "c1".into(), name: "memory_insert".into(), arguments: "{}".into() };
        let entries = chain(vec![
            user("hi"),
            MessageBody::Assistant { content: vec![], tool_calls: vec![call], reasoning: None },
            // The process died here; the next turn starts.
            user("are you there?"),
            MessageBody::Tool {
                tool_call_id: "stray".into(),
                name: "x".into(),
                content: text_content("?"),
                is_error: false,
            },
        ]);
        let m = to_model_messages(&entries);
        let roles: Vec<&str> = m.iter().map(|v| v["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "user"]);
        assert_eq!(m[1]["content"], Value::Null);
        assert_eq!(m[2]["tool_call_id"], "c1");
        assert_eq!(m[2]["content"], INTERRUPTED_TOOL_RESULT);
    }

    #[test]
    fn window_starts_at_the_last_compactions_cut() {
        let mut entries = chain(vec![user("old one"), user("old two"), user("kept")]);
        let kept_id = entries[2].id().to_string();
        let parent = entries.last().map(|e| e.id().to_string());
        entries.push(Entry::new(
            parent,
            MessageBody::Custom {
                kind: COMPACTION_KIND.into(),
                payload: json!({"summary": "S", "first_kept_id": kept_id}),
            },
        ));
        let parent = entries.last().map(|e| e.id().to_string());
        entries.push(Entry::new(parent, user("new")));
        let w = window(&entries);
        assert_eq!(w.summary.as_deref(), Some("S"));
        let texts: Vec<String> =
            to_model_messages(&w.entries).iter().map(|m| m["content"].as_str().unwrap().to_string()).collect();
        assert_eq!(texts, ["kept", "new"]);
    }
}
