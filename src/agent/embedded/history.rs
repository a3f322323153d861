//! Turns the transcript into the messages sent to the model: everything after the
//! last compaction's cut, with that compaction's summary, and tool calls that never
//! got a result (a crash mid-turn) answered so the request stays valid.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::agent::RecordedReply;
use crate::store::{text_of, Entry, MessageBody, StoreResult};

pub const COMPACTION_KIND: &str = "compaction";

/// The end of the active path that the model can still see, read newest first
/// from `newest_first` (the store's lazy reverse scan) and returned oldest first:
/// back from the newest entry along parents, through the newest compaction on
/// the way and on to the first entry it kept (or the compaction itself). The
/// whole path when nothing was compacted. What lies before is never read, so a
/// turn's start costs the same however long the conversation has run.
pub fn active_tail<I>(newest_first: I) -> StoreResult<Vec<Entry>>
where
    I: Iterator<Item = StoreResult<(u64, Entry)>>,
{
    let mut path: Vec<Entry> = Vec::new();
    let mut seen = HashSet::new();
    // The next id along the path; `None` before the newest entry is read.
    let mut wanted: Option<String> = None;
    let mut stop_at: Option<String> = None;
    for item in newest_first {
        let (_, entry) = item?;
        if !path.is_empty() && wanted.as_deref() != Some(entry.id()) {
            continue; // another branch
        }
        // A cycle ends the walk rather than looping.
        if !seen.insert(entry.id().to_string()) {
            break;
        }
        if stop_at.is_none() {
            if let MessageBody::Custom { kind, payload } = &entry.msg.body {
                if kind == COMPACTION_KIND {
                    let kept = payload.get("first_kept_id").and_then(Value::as_str);
                    stop_at = Some(kept.unwrap_or(entry.id()).to_string());
                }
            }
        }
        let reached = stop_at.as_deref() == Some(entry.id());
        wanted = entry.parent_id.clone();
        path.push(entry);
        if reached || wanted.is_none() {
            break;
        }
    }
    path.reverse();
    Ok(path)
}

/// The entries after the newest one for which `stop` holds, oldest first, read
/// from `newest_first` (the store's lazy reverse scan) and no further back.
pub fn back_to<I>(newest_first: I, mut stop: impl FnMut(&Entry) -> bool) -> StoreResult<Vec<Entry>>
where
    I: Iterator<Item = StoreResult<(u64, Entry)>>,
{
    let mut after = Vec::new();
    for item in newest_first {
        let (_, entry) = item?;
        if stop(&entry) {
            break;
        }
        after.push(entry);
    }
    after.reverse();
    Ok(after)
}

/// The reply among `after` (the entries after a message, oldest first): the
/// assistant's words from its first entry with text, up to the next user message
/// after them (messages right after the first, still unanswered, share its reply).
pub fn reply_in(after: &[Entry]) -> Option<RecordedReply> {
    let mut reply: Option<RecordedReply> = None;
    for entry in after {
        match &entry.msg.body {
            MessageBody::User { .. } if reply.is_some() => break,
            MessageBody::Assistant { content, .. } => {
                let text = text_of(content);
                if text.trim().is_empty() {
                    continue;
                }
                match &mut reply {
                    None => reply = Some(RecordedReply { entry_id: entry.id().to_string(), text }),
                    Some(r) => {
                        r.text.push_str("\n\n");
                        r.text.push_str(&text);
                    }
                }
            }
            _ => {}
        }
    }
    reply
}

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
                // "" rather than null: some servers (llama-cpp-python) answer null with HTTP 500.
                let mut message = json!({"role": "assistant", "content": text});
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

    fn said(t: &str) -> MessageBody {
        MessageBody::Assistant { content: text_content(t), tool_calls: vec![], reasoning: None }
    }

    #[test]
    fn messages_recorded_back_to_back_share_one_reply_and_the_next_message_ends_it() {
        let call = ToolCall { id: "c1".into(), name: "Bash".into(), arguments: "{}".into() };
        let entries = chain(vec![
            user("first"),
            // Recorded by a run that died before the model answered.
            user("second"),
            MessageBody::Assistant { content: vec![], tool_calls: vec![call], reasoning: None },
            MessageBody::Tool {
                tool_call_id: "c1".into(),
                name: "Bash".into(),
                content: text_content("ok"),
                is_error: false,
            },
            said("to both"),
            said("and more"),
            user("third"),
            said("to the third"),
        ]);
        let after = |i: usize| reply_in(&entries[i + 1..]);
        let first = after(0).expect("answered");
        assert_eq!(first.text, "to both\n\nand more");
        assert_eq!(first.entry_id, entries[4].id());
        assert_eq!(after(1), Some(first), "the same reply, whichever message asks");
        assert_eq!(after(6).unwrap().text, "to the third");
        assert_eq!(after(7), None, "nothing answered the reply itself");
        assert_eq!(reply_in(&entries[1..3]), None, "a tool call without words is no reply");
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
        assert_eq!(m[1]["content"], "", "an empty string, never null");
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

        // Read from the newest end, the walk stops at the kept entry: the two old
        // ones are never decoded (an error there would surface), and the window is
        // the same.
        let mut newest_first: Vec<StoreResult<(u64, Entry)>> =
            entries.iter().cloned().enumerate().map(|(i, e)| Ok((i as u64, e))).collect();
        newest_first[0] = Err(crate::store::StoreError::Backend("never read".into()));
        newest_first.reverse();
        let tail = active_tail(newest_first.into_iter()).unwrap();
        assert_eq!(tail.len(), 3, "kept, the compaction, new");
        let w = window(&tail);
        assert_eq!(w.summary.as_deref(), Some("S"));
        assert_eq!(w.entries.len(), 2);
    }

    #[test]
    fn the_tail_without_a_compaction_is_the_whole_active_path() {
        let mut entries = chain(vec![user("a"), user("b"), user("c")]);
        // A fork: "d" hangs under "a", so the active branch is a -> d.
        let a = entries[0].id().to_string();
        entries.push(Entry::new(Some(a), user("d")));
        let newest_first = entries.iter().cloned().enumerate().rev().map(|(i, e)| Ok((i as u64, e)));
        let texts: Vec<String> = active_tail(newest_first)
            .unwrap()
            .iter()
            .map(|e| match &e.msg.body {
                MessageBody::User { content } => text_of(content),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["a", "d"]);
    }
}
