//! Where a Discord channel id sits: a DM, a guild channel, or a thread under a
//! parent channel. Learnt from the gateway (guilds, channels and threads as they
//! are announced) and, for an id not seen yet, asked of the API once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchboard_channel_core::ChatKey;

use crate::rest::{Rest, RestError};
use crate::wire::Channel;

/// More channels than this are forgotten all at once and learnt again as needed.
const MAX_KNOWN: usize = 50_000;
/// A channel lookup is tried this many times before its place is guessed.
const RESOLVE_ATTEMPTS: usize = 3;

/// What the adapter knows of one channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The guild, for guild channels and threads.
    pub guild: Option<String>,
    /// For a thread or forum post: the channel it belongs to.
    pub parent: Option<String>,
    /// Whether messages can be sent and read there.
    pub holds_messages: bool,
}

impl Place {
    /// A direct chat: no guild, no parent.
    pub fn direct() -> Place {
        Place { guild: None, parent: None, holds_messages: true }
    }

    fn of(channel: &Channel) -> Place {
        Place {
            guild: channel.guild_id.clone(),
            parent: channel.parent_id.clone().filter(|_| channel.is_thread()),
            holds_messages: channel.holds_messages(),
        }
    }
}

/// The known channels. Cheap to clone; clones share the map.
#[derive(Clone, Default)]
pub struct Places(Arc<Mutex<HashMap<String, Place>>>);

impl Places {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Place>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns a channel (its guild filled in from `guild` when the payload lacks it).
    pub fn learn(&self, channel: &Channel, guild: Option<&str>) {
        let mut place = Place::of(channel);
        if place.guild.is_none() {
            place.guild = guild.map(str::to_string);
        }
        let mut map = self.map();
        if map.len() >= MAX_KNOWN {
            map.clear();
        }
        map.insert(channel.id.clone(), place);
    }

    /// Learns a direct chat (one person and the bot; no guild).
    pub fn learn_direct(&self, id: &str) {
        let place = Place::direct();
        let mut map = self.map();
        if map.len() >= MAX_KNOWN {
            map.clear();
        }
        map.insert(id.to_string(), place);
    }

    /// Forgets a deleted channel.
    pub fn forget(&self, id: &str) {
        self.map().remove(id);
    }

    /// Where `channel` is: known, else fetched (and learnt).
    pub async fn resolve(&self, rest: &Rest, channel: &str, guild: Option<&str>) -> Result<Place, RestError> {
        if let Some(place) = self.map().get(channel) {
            return Ok(place.clone());
        }
        let fetched = rest.get(&format!("/channels/{channel}")).await?;
        let fetched: Channel =
            serde_json::from_value(fetched).map_err(|e| RestError::Transient(format!("unreadable channel: {e}")))?;
        self.learn(&fetched, guild);
        Ok(self.map().get(channel).cloned().unwrap_or_else(|| Place::of(&fetched)))
    }

    /// Where a channel of `guild` is, asked again while Discord is busy or
    /// unreachable; after that it is taken for a plain channel of the guild (a
    /// thread then counts as a chat of its own, which is logged).
    pub async fn resolve_in_guild(&self, rest: &Rest, channel: &str, guild: &str) -> Place {
        let mut wait = Duration::from_millis(200);
        for _ in 0..RESOLVE_ATTEMPTS {
            match self.resolve(rest, channel, Some(guild)).await {
                Ok(place) => return place,
                Err(RestError::RateLimited { retry_after, .. }) => {
                    tokio::time::sleep(retry_after.min(Duration::from_secs(5))).await
                }
                Err(RestError::Transient(_)) => tokio::time::sleep(wait).await,
                Err(RestError::Refused { .. }) => break,
            }
            wait *= 2;
        }
        tracing::warn!("discord: a channel could not be looked up; taken for a plain channel of its guild");
        Place { guild: Some(guild.to_string()), parent: None, holds_messages: true }
    }
}

/// The chat key of a message in `channel`: a thread is a conversation of its
/// own, kept under its parent channel so the parent's settings apply to it.
pub fn chat_key(account: &str, channel: &str, place: &Place) -> ChatKey {
    let (chat, thread) = match &place.parent {
        Some(parent) => (parent.clone(), Some(channel.to_string())),
        None => (channel.to_string(), None),
    };
    ChatKey { channel: crate::CHANNEL.into(), account: account.into(), chat, thread }
}

/// The Discord channel a chat's messages go to: the thread, else the channel.
pub fn target(chat: &ChatKey) -> &str {
    chat.thread.as_deref().unwrap_or(&chat.chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_its_own_chat_under_its_parent() {
        let places = Places::default();
        let thread: Channel =
            serde_json::from_value(serde_json::json!({"id": "30", "type": 11, "parent_id": "20", "guild_id": "1"}))
                .unwrap();
        let text: Channel = serde_json::from_value(serde_json::json!({"id": "20", "type": 0})).unwrap();
        places.learn(&thread, None);
        places.learn(&text, Some("1"));
        let place = places.map().get("30").cloned().unwrap();
        let key = chat_key("9", "30", &place);
        assert_eq!((key.chat.as_str(), key.thread.as_deref(), target(&key)), ("20", Some("30"), "30"));
        let key = chat_key("9", "20", &places.map().get("20").cloned().unwrap());
        assert_eq!((key.id(), target(&key)), ("discord:20".to_string(), "20"));
    }
}
