//! Messages sent while the bot was not connected. After each fresh session
//! (READY), for every chat the gateway's journal saw within the configured
//! window, the messages after the newest one it journaled there are fetched
//! (at most the configured count, oldest first) and handed to the gateway like
//! live ones; the journal recognises any it already has. This runs beside the
//! live events, so interactions are still acknowledged in time.
//!
//! Only chats the journal knows are caught up: a guild the bot just joined, or
//! a fresh data directory, does not get its history answered.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_channel_core::{ChatKind, RecentChat};
use tokio::sync::watch;

use crate::places::target;
use crate::receive::Receiver;
use crate::rest::RestError;
use crate::wire::{snowflake_at, Message};
use crate::CHANNEL;

/// A history fetch that is rate limited is tried this many times.
const ATTEMPTS: usize = 3;

/// Catches up every recently active chat, one after another.
pub async fn run(receiver: Arc<Receiver>, stop: watch::Receiver<bool>) {
    let window = receiver.catch_up;
    if window.max_age.is_zero() || window.max_messages == 0 {
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let oldest = snowflake_at(now.saturating_sub(window.max_age.as_millis() as u64));
    let mut handed = 0;
    for recent in receiver.sink.recent_chats(CHANNEL, window.max_age).await {
        if *stop.borrow() {
            return;
        }
        handed += chat(&receiver, &recent, oldest, &stop).await;
    }
    if handed > 0 {
        tracing::info!(count = handed, "discord: messages from while the bot was away handed to the gateway");
    }
}

/// The id of the message (or interaction) an event carried: a snowflake.
fn snowflake_of(event_id: &str) -> Option<u64> {
    event_id.rsplit(':').next()?.parse().ok()
}

/// One chat: what came after its newest journaled event. Returns how many
/// messages were handed over.
async fn chat(receiver: &Receiver, recent: &RecentChat, oldest: u64, stop: &watch::Receiver<bool>) -> usize {
    let channel = target(&recent.chat);
    // The guild is needed to judge a group chat; a chat whose guild cannot be
    // told is left alone rather than guessed (it would be judged as a DM).
    let guild = match recent.kind {
        ChatKind::Direct => None,
        ChatKind::Group => match receiver.places.resolve(&receiver.rest, channel, None).await {
            Ok(place) if place.guild.is_some() => place.guild,
            _ => {
                tracing::warn!("discord: a channel's guild is unknown; its missed messages are not fetched");
                return 0;
            }
        },
    };
    let after = snowflake_of(&recent.last_event).unwrap_or(0).max(oldest);
    let Some(mut messages) = history(receiver, channel, after).await else { return 0 };
    messages.sort_by_key(|m| m.id.parse::<u64>().unwrap_or(0));
    let mut handed = 0;
    for mut message in messages.into_iter().filter(|m| m.id.parse::<u64>().is_ok_and(|id| id > after)) {
        message.guild_id = guild.clone();
        if let Some(event) = receiver.message(&message).await {
            receiver.hand_over(event, stop).await;
            handed += 1;
        }
    }
    handed
}

/// Up to the configured count of messages after `after`, waiting out rate limits.
async fn history(receiver: &Receiver, channel: &str, after: u64) -> Option<Vec<Message>> {
    let path = format!("/channels/{channel}/messages?after={after}&limit={}", receiver.catch_up.max_messages.min(100));
    for _ in 0..ATTEMPTS {
        match receiver.rest.get(&path).await.map(serde_json::from_value) {
            Ok(Ok(messages)) => return Some(messages),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "discord: unreadable message history skipped");
                return None;
            }
            Err(RestError::RateLimited { retry_after, .. }) => {
                tokio::time::sleep(retry_after.min(Duration::from_secs(60))).await
            }
            Err(e) => {
                tracing::warn!(error = %e.into_channel("read recent messages"), "discord: missed messages not fetched");
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_snowflake() {
        assert_eq!(snowflake_of("discord:m:1234"), Some(1234));
        assert_eq!(snowflake_of("discord:i:99"), Some(99));
        assert_eq!(snowflake_of("other"), None);
    }
}
