//! Where a Discord channel id sits: a DM, a guild channel, or a thread under a
//! parent channel. Learnt from the gateway (guilds, channels and threads as they
//! are announced) and, for an id not seen yet, asked of the API once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use switchboard_channel_core::ChatKey;

use crate::rest::Rest;
use crate::wire::Channel;

/// More channels than this are forgotten all at once and learnt again as needed.
const MAX_KNOWN: usize = 50_000;

/// What the adapter knows of one channel id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The guild, for guild channels and threads.
    pub guild: Option<String>,
    /// For a thread or forum post: the channel it belongs to.
    pub parent: Option<String>,
    /// The newest message id Discord reported for it.
    pub last_message: Option<String>,
    /// Whether messages can be sent and read there.
    pub holds_messages: bool,
}

impl Place {
    /// A direct chat: no guild, no parent.
    pub fn direct() -> Place {
        Place { guild: None, parent: None, last_message: None, holds_messages: true }
    }

    fn of(channel: &Channel) -> Place {
        Place {
            guild: channel.guild_id.clone(),
            parent: channel.parent_id.clone().filter(|_| channel.is_thread()),
            last_message: channel.last_message_id.clone(),
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

    /// Notes the newest message seen in a channel.
    pub fn saw_message(&self, channel: &str, message: &str) {
        if let Some(place) = self.map().get_mut(channel) {
            place.last_message = Some(message.to_string());
        }
    }

    /// The known channels of `guild` that hold messages, with their newest message.
    pub fn in_guild(&self, guild: &str) -> Vec<(String, Option<String>)> {
        let map = self.map();
        let mut found: Vec<(String, Option<String>)> = map
            .iter()
            .filter(|(_, p)| p.holds_messages && p.guild.as_deref() == Some(guild))
            .map(|(id, p)| (id.clone(), p.last_message.clone()))
            .collect();
        found.sort();
        found
    }

    /// Where `channel` is: known, else fetched (and learnt). A channel that cannot
    /// be fetched is taken for a plain channel of `guild`.
    pub async fn resolve(&self, rest: &Rest, channel: &str, guild: Option<&str>) -> Place {
        if let Some(place) = self.map().get(channel) {
            return place.clone();
        }
        match rest.get(&format!("/channels/{channel}")).await.map(serde_json::from_value::<Channel>) {
            Ok(Ok(fetched)) => {
                self.learn(&fetched, guild);
                self.map().get(channel).cloned().unwrap_or_else(|| Place::of(&fetched))
            }
            _ => {
                tracing::debug!(%channel, "discord: could not look a channel up; taken for a plain channel");
                Place { guild: guild.map(str::to_string), parent: None, last_message: None, holds_messages: true }
            }
        }
    }
}

/// The chat key of a message in `channel`: a thread is a conversation of its
/// own, kept under its parent channel so the parent's settings apply to it.
pub fn chat_key(account: &str, channel: &str, place: &Place) -> ChatKey {
    let (chat, thread) = match &place.parent {
        Some(parent) => (parent.clone(), Some(channel.to_string())),
        None => (channel.to_string(), None),
    };
    ChatKey { channel: "discord".into(), account: account.into(), chat, thread }
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
        assert_eq!(places.in_guild("1").len(), 2);
    }
}
