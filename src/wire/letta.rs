//! Transcript entries as Letta message objects (`letta-code-wire.md` §5.6), the
//! shapes `list_messages` returns and applications render, and their pages.

use serde_json::{json, Value};

use crate::store::{format_time, text_of, Entry, MessageBody};

/// Every entry as the Letta messages it stands for, oldest first. One assistant
/// entry can be several messages (reasoning, text, each tool call); their ids
/// are the entry's with a suffix, so every id is unique and stable.
pub fn messages(entries: &[Entry]) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in entries {
        let id = entry.id();
        let date = format_time(entry.msg.timestamp);
        match &entry.msg.body {
            MessageBody::User { content } => {
                out.push(json!({"id": id, "date": date, "message_type": "user_message", "content": text_of(content)}));
            }
            MessageBody::Assistant { content, tool_calls, reasoning } => {
                if let Some(reasoning) = reasoning.as_deref().filter(|r| !r.is_empty()) {
                    out.push(json!({
                        "id": format!("{id}-reasoning"), "date": date,
                        "message_type": "reasoning_message", "reasoning": reasoning,
                    }));
                }
                let text = text_of(content);
                if !text.is_empty() {
                    out.push(json!({"id": id, "date": date, "message_type": "assistant_message", "content": text}));
                }
                for (i, call) in tool_calls.iter().enumerate() {
                    out.push(json!({
                        "id": format!("{id}-call-{i}"), "date": date, "message_type": "tool_call_message",
                        "tool_call": {"tool_call_id": call.id, "name": call.name, "arguments": call.arguments},
                    }));
                }
            }
            MessageBody::Tool { tool_call_id, content, is_error, .. } => out.push(json!({
                "id": id, "date": date, "message_type": "tool_return_message",
                "tool_call_id": tool_call_id,
                "status": if *is_error { "error" } else { "success" },
                "tool_return": text_of(content),
            })),
            MessageBody::Custom { .. } => {}
        }
    }
    out
}

/// Newest first (`desc`, the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A `list_messages` request's paging fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Only messages older than this id.
    pub before: Option<String>,
    /// Only messages newer than this id.
    pub after: Option<String>,
    pub order: Order,
    pub limit: usize,
}

/// How many messages a page holds when the request does not say.
pub const DEFAULT_LIMIT: usize = 50;

impl Query {
    /// From a control request's fields; `Err` is the text of the error response.
    pub fn from_request(request: &Value) -> Result<Query, String> {
        let text = |name: &str| match request.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{name} must be a string, not {other}")),
        };
        let order = match text("order")?.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => return Err(format!("order must be asc or desc, not {other:?}")),
        };
        let limit = match request.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => n.min(10_000) as usize,
                _ => return Err(format!("limit must be a positive number, not {v}")),
            },
        };
        Ok(Query { before: text("before")?, after: text("after")?, order, limit })
    }
}

/// One page: the messages, the id to pass as `before` for the next one, and
/// whether more lie beyond it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub messages: Vec<Value>,
    pub next_before: Option<String>,
    pub has_more: bool,
}

/// Cuts a page out of `all` (oldest first). `before` and `after` bound by age
/// whatever the order; the page never overlaps the one its `next_before` came from.
pub fn page(all: Vec<Value>, query: &Query) -> Result<Page, String> {
    let position = |id: &str| {
        all.iter().position(|m| m["id"] == id).ok_or_else(|| format!("there is no message {id} in this conversation"))
    };
    let start = match &query.after {
        Some(id) => position(id)? + 1,
        None => 0,
    };
    let end = match &query.before {
        Some(id) => position(id)?,
        None => all.len(),
    };
    let mut window: Vec<Value> = if start < end { all[start..end].to_vec() } else { Vec::new() };
    if query.order == Order::Desc {
        window.reverse();
    }
    let has_more = window.len() > query.limit;
    window.truncate(query.limit);
    let next_before = window.last().and_then(|m| m["id"].as_str()).map(str::to_string);
    Ok(Page { messages: window, next_before, has_more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{text_content, ToolCall};

    fn transcript() -> Vec<Entry> {
        let mut entries = vec![Entry::new(None, MessageBody::User { content: text_content("turn one") })];
        entries.push(Entry::new(
            None,
            MessageBody::Assistant {
                content: text_content("calling"),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "Bash".into(),
                    arguments: "{\"command\":\"ls\"}".into(),
                }],
                reasoning: Some("think".into()),
            },
        ));
        entries.push(Entry::new(
            None,
            MessageBody::Tool {
                tool_call_id: "call_1".into(),
                name: "Bash".into(),
                content: text_content("a.txt"),
                is_error: false,
            },
        ));
        entries.push(Entry::new(None, MessageBody::Custom { kind: "tool_started".into(), payload: json!({}) }));
        entries.push(Entry::new(None, MessageBody::User { content: text_content("turn two") }));
        entries
    }

    #[test]
    fn entries_become_letta_messages_with_unique_ids() {
        let all = messages(&transcript());
        let kinds: Vec<&str> = all.iter().map(|m| m["message_type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "user_message",
                "reasoning_message",
                "assistant_message",
                "tool_call_message",
                "tool_return_message",
                "user_message"
            ]
        );
        let mut ids: Vec<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        assert_eq!(all[3]["tool_call"]["arguments"], "{\"command\":\"ls\"}");
        assert_eq!(all[4]["status"], "success");
        assert!(all.iter().all(|m| m["date"].as_str().is_some_and(|d| d.ends_with('Z'))));
    }

    #[test]
    fn pages_follow_the_letta_semantics() {
        let all = messages(&transcript());
        let q =
            |before: Option<&str>, order, limit| Query { before: before.map(String::from), after: None, order, limit };
        let first = page(all.clone(), &q(None, Order::Desc, 2)).unwrap();
        assert_eq!(first.messages[0]["content"], "turn two");
        assert!(first.has_more);
        let next = page(all.clone(), &q(first.next_before.as_deref(), Order::Desc, 2)).unwrap();
        for m in &next.messages {
            assert!(!first.messages.contains(m), "pages overlap");
        }
        assert_eq!(next.messages[0]["message_type"], "tool_call_message");
        let asc = page(all.clone(), &q(None, Order::Asc, 2)).unwrap();
        assert_eq!(asc.messages[0]["content"], "turn one");
        assert_ne!(asc.messages[0], first.messages[0]);
        let whole = page(all.clone(), &q(None, Order::Desc, 100)).unwrap();
        assert!(!whole.has_more);
        assert_eq!(whole.next_before.as_deref(), whole.messages.last().unwrap()["id"].as_str());
        let after = Query { after: Some(all[4]["id"].as_str().unwrap().into()), ..q(None, Order::Asc, 10) };
        assert_eq!(page(all.clone(), &after).unwrap().messages.len(), 1);
        assert!(page(all, &q(Some("msg-nope"), Order::Desc, 2)).unwrap_err().contains("msg-nope"));
    }

    #[test]
    fn a_query_reads_only_well_formed_fields() {
        let q = Query::from_request(&json!({"subtype": "list_messages", "order": "asc", "limit": 2})).unwrap();
        assert_eq!((q.order, q.limit), (Order::Asc, 2));
        assert_eq!(Query::from_request(&json!({})).unwrap().order, Order::Desc);
        assert!(Query::from_request(&json!({"order": "sideways"})).is_err());
        assert!(Query::from_request(&json!({"limit": -1})).is_err());
        assert!(Query::from_request(&json!({"before": 5})).is_err());
    }
}
