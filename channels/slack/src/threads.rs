//! Which channel threads the bot takes part in (it was mentioned there, or it
//! posted there): in those, later messages are answered without a new mention.
//! Learnt as it happens and, for a thread not seen since the start, read once
//! from `conversations.replies`. Also which direct-chat threads are assistant
//! threads still waiting for their title.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use crate::api::Api;

/// More threads than this are forgotten at once and read again when needed.
const MAX_KNOWN: usize = 20_000;

#[derive(Default)]
struct Known {
    /// `(channel, thread_ts)` -> whether the bot is in it.
    threads: HashMap<(String, String), bool>,
    /// Assistant threads whose title is not set yet.
    untitled: HashSet<(String, String)>,
}

/// Shared by the receiver and the sender. Cheap to clone.
#[derive(Clone, Default)]
pub struct Threads(Arc<Mutex<Known>>);

impl Threads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, channel: &str, thread: &str, member: bool) {
        let mut known = self.lock();
        if known.threads.len() >= MAX_KNOWN {
            known.threads.clear();
        }
        known.threads.insert((channel.into(), thread.into()), member);
    }

    /// The bot is now part of a thread (mentioned in it, or it posted there).
    pub fn joined(&self, channel: &str, thread: &str) {
        self.set(channel, thread, true);
    }

    /// Whether the bot takes part in a thread; asked of Slack once per thread
    /// (whether the bot `me` posted in it), then known.
    pub async fn is_member(&self, api: &Api, me: &str, channel: &str, thread: &str) -> bool {
        if let Some(member) = self.lock().threads.get(&(channel.to_string(), thread.to_string())) {
            return *member;
        }
        let replies = api.call("conversations.replies", &json!({"channel": channel, "ts": thread, "limit": 200})).await;
        let member = match replies {
            Ok(answer) => answer["messages"].as_array().is_some_and(|m| {
                m.iter().any(|msg| {
                    msg["user"] == me || msg["text"].as_str().is_some_and(|t| t.contains(&format!("<@{me}>")))
                })
            }),
            Err(e) => {
                tracing::debug!(error = ?e, "slack: could not read a thread; taken as one the bot is not in");
                return false;
            }
        };
        self.set(channel, thread, member);
        member
    }

    /// An assistant thread was opened: its first message names it.
    pub fn assistant_started(&self, channel: &str, thread: &str) {
        let mut known = self.lock();
        if known.untitled.len() >= MAX_KNOWN {
            known.untitled.clear();
        }
        known.untitled.insert((channel.into(), thread.into()));
    }

    /// Whether this is an assistant thread's first message (and so its title).
    pub fn take_untitled(&self, channel: &str, thread: &str) -> bool {
        self.lock().untitled.remove(&(channel.to_string(), thread.to_string()))
    }
}
