//! Compaction: when the estimated prompt passes `compaction_threshold × context_window`,
//! the older part of the conversation is summarised by the model into an appended
//! `custom` entry. The transcript itself is never rewritten.

use serde_json::{json, Value};

use super::history::COMPACTION_KIND;
use super::llm::{ChatRequest, Tools};
use crate::store::{text_of, Entry, MessageBody};

/// A rough token count: about four characters a token, plus a little per message.
pub fn estimate_tokens(system: &str, messages: &[Value], tools: &Tools) -> u64 {
    let chars = system.len() + json_len(messages) + tools.json_len();
    (chars as u64).div_ceil(4) + 4 * messages.len() as u64
}

/// Bytes of the values' JSON, counted without building it.
fn json_len(values: &[Value]) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    for value in values {
        serde_json::to_writer(&mut count, value).expect("counting cannot fail");
    }
    count.0
}

fn entry_tokens(entry: &Entry) -> u64 {
    (serde_json::to_string(&entry.msg.body).map(|s| s.len()).unwrap_or(0) as u64).div_ceil(4) + 4
}

pub struct Plan {
    /// The entries to fold into the summary, oldest first.
    pub summarize: Vec<Entry>,
    /// The first entry still sent verbatim.
    pub first_kept_id: String,
}

/// Where to cut the window: at a user message, keeping as much recent conversation as
/// fits `keep_budget` tokens but always the newest user message and what follows it.
pub fn plan(window: &[Entry], keep_budget: u64) -> Option<Plan> {
    let is_user = |e: &Entry| matches!(e.msg.body, MessageBody::User { .. });
    let last_user = window.iter().rposition(is_user)?;
    let mut cut = last_user;
    let mut tail: u64 = window[last_user..].iter().map(entry_tokens).sum();
    for i in (0..last_user).rev() {
        tail += entry_tokens(&window[i]);
        if tail > keep_budget {
            break;
        }
        if is_user(&window[i]) {
            cut = i;
        }
    }
    if cut == 0 {
        return None;
    }
    Some(Plan { summarize: window[..cut].to_vec(), first_kept_id: window[cut].id().to_string() })
}

const SUMMARY_INSTRUCTIONS: &str = "You condense conversations so they can continue in a smaller context. \
Summarise the conversation below as notes for the assistant: keep names, facts, decisions, open questions, \
promises the assistant made and the state of any ongoing work. Write only the summary.";

/// The model request that produces the summary. `max_chars` bounds the transcript
/// text sent (the newest part is kept).
pub fn summary_request(model: &str, previous: Option<&str>, entries: &[Entry], max_chars: usize) -> ChatRequest {
    let mut transcript = String::new();
    for entry in entries {
        let line = match &entry.msg.body {
            MessageBody::User { content } => format!("User: {}", clip(&text_of(content), 2000)),
            MessageBody::Assistant { content, tool_calls, .. } => {
                let mut line = format!("Assistant: {}", clip(&text_of(content), 2000));
                for c in tool_calls {
                    line.push_str(&format!("\n(Assistant called {}({}))", c.name, clip(&c.arguments, 300)));
                }
                line
            }
            MessageBody::Tool { name, content, .. } => {
                format!("(Result of {name}: {})", clip(&text_of(content), 500))
            }
            MessageBody::Custom { .. } => continue,
        };
        transcript.push_str(&line);
        transcript.push('\n');
    }
    if transcript.len() > max_chars {
        let start = transcript.len() - max_chars;
        let start = (start..transcript.len()).find(|i| transcript.is_char_boundary(*i)).unwrap_or(0);
        transcript = transcript[start..].to_string();
    }
    let mut user = String::new();
    if let Some(previous) = previous {
        user.push_str(&format!("Summary of what came before:\n{previous}\n\n"));
    }
    user.push_str(&format!("Conversation:\n{transcript}"));
    ChatRequest {
        model: model.to_string(),
        messages: vec![
            json!({"role": "system", "content": SUMMARY_INSTRUCTIONS}),
            json!({"role": "user", "content": user}),
        ],
        tools: Tools::default(),
    }
}

pub fn compaction_entry(parent: Option<String>, summary: &str, plan: &Plan, tokens_before: u64) -> Entry {
    Entry::new(
        parent,
        MessageBody::Custom {
            kind: COMPACTION_KIND.into(),
            payload: json!({
                "summary": summary,
                "first_kept_id": plan.first_kept_id,
                "summarized_entries": plan.summarize.len(),
                "tokens_before": tokens_before,
            }),
        },
    )
}

fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max_chars).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::text_content;

    fn chain(texts: &[(&str, bool)]) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for (t, is_user) in texts {
            let parent = out.last().map(|e| e.id().to_string());
            let body = if *is_user {
                MessageBody::User { content: text_content(*t) }
            } else {
                MessageBody::Assistant { content: text_content(*t), tool_calls: vec![], reasoning: None }
            };
            out.push(Entry::new(parent, body));
        }
        out
    }

    #[test]
    fn cuts_at_a_user_message_and_keeps_the_current_turn() {
        let long = "x".repeat(400);
        let w = chain(&[(&long, true), (&long, false), (&long, true), (&long, false), ("now", true)]);
        // Budget for roughly one old turn plus the current message.
        let p = plan(&w, 260).unwrap();
        assert_eq!(p.first_kept_id, w[2].id());
        assert_eq!(p.summarize.len(), 2);
        // A tiny budget still keeps the newest user message.
        let p = plan(&w, 1).unwrap();
        assert_eq!(p.first_kept_id, w[4].id());
        // Nothing before the only user message: nothing to summarise.
        assert!(plan(&w[4..], 1).is_none());
    }

    #[test]
    fn summary_request_carries_the_previous_summary_and_the_newest_text() {
        let w = chain(&[("first question", true), ("first answer", false)]);
        let r = summary_request("m", Some("PREVIOUS"), &w, 10_000);
        let user = r.messages[1]["content"].as_str().unwrap();
        assert!(
            user.contains("PREVIOUS")
                && user.contains("User: first question")
                && user.contains("Assistant: first answer")
        );
        assert!(r.tools.is_empty());
        let r = summary_request("m", None, &w, 25);
        let user = r.messages[1]["content"].as_str().unwrap();
        assert!(user.ends_with("Assistant: first answer\n") && !user.contains("first question"));
    }
}
