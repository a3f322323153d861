//! `conversation_search`: finds past messages of this conversation (read-only).
//! Where the configuration allows it (`tools.conversation_search = "agent"`), an
//! admin's search covers every conversation of the agent; nobody else's does,
//! so nobody reads another chat through the agent.

use serde_json::{json, Value};

use super::{ToolClass, ToolEnv, ToolOutcome, ToolSpec};
use crate::store::{format_time, text_of, MessageBody};

pub const NAME: &str = "conversation_search";
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;
const EXCERPT_CHARS: usize = 300;

pub fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME,
        description: "Search the past messages of this conversation (case-insensitive text match). Newest first.",
        parameters: json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words or a phrase to look for."},
                "limit": {"type": "integer", "description": "How many matches to return (default 10, at most 50)."}
            },
            "required": ["query"]
        }),
        class: ToolClass::History,
    }
}

pub async fn run(env: &ToolEnv, input: &Value) -> ToolOutcome {
    let Some(query) = input.get("query").and_then(Value::as_str).map(str::trim).filter(|q| !q.is_empty()) else {
        return ToolOutcome::error("query is required and must be non-empty text.");
    };
    let limit = input.get("limit").and_then(Value::as_u64).map_or(DEFAULT_LIMIT, |l| (l as usize).clamp(1, MAX_LIMIT));
    let needle = query.to_lowercase();
    let agent_id = env.agent_id.clone();
    let (own, search_all) = (env.conversation_id.clone(), env.search_all);
    let found = crate::store::scan(&env.store, move |store| {
        let mut hits = Vec::new();
        let conversations: Vec<String> = match search_all {
            true => store.conversations(Some(&agent_id))?.into_iter().map(|c| c.id).collect(),
            false => vec![own],
        };
        for conversation in conversations {
            for (_, entry) in store.entries(&conversation)? {
                let (role, text) = match &entry.msg.body {
                    MessageBody::User { content } => ("user", text_of(content)),
                    MessageBody::Assistant { content, .. } => ("assistant", text_of(content)),
                    _ => continue,
                };
                if text.to_lowercase().contains(&needle) {
                    hits.push((entry.msg.timestamp, conversation.clone(), role, text));
                }
            }
        }
        Ok(hits)
    })
    .await;
    let mut hits = match found {
        Ok(hits) => hits,
        Err(e) => {
            tracing::error!(error = %e, "conversation_search could not read the store");
            return ToolOutcome::error("Past conversations could not be read; try again.");
        }
    };
    if hits.is_empty() {
        return ToolOutcome::ok(format!("No past messages match {query:?}."));
    }
    hits.sort_by_key(|h| std::cmp::Reverse(h.0));
    let total = hits.len();
    hits.truncate(limit);
    let mut read_from: Vec<String> = hits.iter().map(|h| h.1.clone()).filter(|c| *c != env.conversation_id).collect();
    read_from.sort();
    read_from.dedup();
    let lines: Vec<String> = hits
        .into_iter()
        .map(|(at, conversation, role, text)| {
            let when = format_time(at);
            let excerpt: String = text.chars().take(EXCERPT_CHARS).collect::<String>().replace('\n', " ");
            format!("[{when}] ({conversation}) {role}: {excerpt}")
        })
        .collect();
    ToolOutcome { read_from, ..ToolOutcome::ok(format!("{} of {total} matches:\n{}", lines.len(), lines.join("\n"))) }
}
