//! Which channel threads the bot takes part in (it posted there): in those, later
//! messages are answered without a new mention. Learnt as it happens and, for a
//! thread not seen since the start, read once from `conversations.replies`.
//! Also which channels are the bot's own DMs, and which assistant threads still
//! wait for their title. Every lookup is short: it runs before an envelope is
//! acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use crate::api::Api;

/// More threads than this are forgotten at once and read again when needed.
const MAX_KNOWN: usize = 20_000;
/// A lookup may hold an envelope's acknowledgement no longer than this.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Default)]
struct Known {
    /// `(channel, thread_ts)` -> whether the bot is in it.
    threads: HashMap<(String, String), bool>,
    /// Assistant threads whose title is not set yet.
    untitled: HashSet<(String, String)>,
    /// `(channel, user)` -> whether the channel is the bot's DM with that person.
    dms: HashMap<(String, String), bool>,
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

    /// The bot posts in a thread: it is part of it now. Returns what was known
    /// before (for [`Threads::restore`]).
    pub fn joined(&self, channel: &str, thread: &str) -> Option<bool> {
        let before = self.lock().threads.get(&(channel.to_string(), thread.to_string())).copied();
        self.set(channel, thread, true);
        before
    }

    /// Puts back what was known of a thread before [`Threads::joined`] (the
    /// post was refused).
    pub fn restore(&self, channel: &str, thread: &str, before: Option<bool>) {
        match before {
            Some(member) => self.set(channel, thread, member),
            None => {
                self.lock().threads.remove(&(channel.to_string(), thread.to_string()));
            }
        }
    }

    /// Whether the bot takes part in a thread (posted in it); asked of Slack
    /// once per thread, then known. When Slack does not answer in time, it is
    /// taken as not (a mention still works) and asked again next time.
    pub async fn is_member(&self, api: &Api, me: &str, channel: &str, thread: &str) -> bool {
        if let Some(member) = self.lock().threads.get(&(channel.to_string(), thread.to_string())) {
            return *member;
        }
        let body = json!({"channel": channel, "ts": thread, "limit": 200});
        let member = match tokio::time::timeout(LOOKUP_TIMEOUT, api.call("conversations.replies", &body)).await {
            Ok(Ok(answer)) => answer["messages"].as_array().is_some_and(|m| m.iter().any(|msg| msg["user"] == me)),
            failed => {
                tracing::debug!(
                    answered = failed.is_ok(),
                    "slack: could not read a thread; taken as one the bot is not in"
                );
                return false;
            }
        };
        self.set(channel, thread, member);
        member
    }

    /// A direct channel the bot received a message in (its own DM).
    pub fn learn_dm(&self, channel: &str, user: &str) {
        let mut known = self.lock();
        if known.dms.len() >= MAX_KNOWN {
            known.dms.clear();
        }
        known.dms.insert((channel.into(), user.into()), true);
    }

    /// Whether `channel` is the bot's own DM with `user` (and not a DM between
    /// two people where a slash command was typed): known, else asked of Slack
    /// (`conversations.info`); when that cannot be told, it is not.
    pub async fn is_bot_dm(&self, api: &Api, channel: &str, user: &str) -> bool {
        let key = (channel.to_string(), user.to_string());
        if let Some(known) = self.lock().dms.get(&key) {
            return *known;
        }
        let info =
            tokio::time::timeout(LOOKUP_TIMEOUT, api.call("conversations.info", &json!({"channel": channel}))).await;
        let dm = match info {
            Ok(Ok(answer)) => answer["channel"]["is_im"] == true && answer["channel"]["user"] == user,
            // Not the bot's to read (other people's DM).
            Ok(Err(_)) => false,
            // No answer in time: not known, asked again next time.
            Err(_) => return false,
        };
        self.lock().dms.insert(key, dm);
        dm
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
