//! Messages sent while the bot was not connected: when a guild is announced
//! (at every fresh connection), the recent messages of its channels that had
//! activity within the configured window are fetched and handed to the gateway
//! like live ones, oldest first. The gateway's journal recognises the ones it
//! already has by their ids, so fetching a message twice answers it once.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::receive::Receiver;
use crate::wire::{snowflake_at, Message};

/// The oldest snowflake a message may have to be caught up on, unless catching
/// up is off.
fn cutoff(receiver: &Receiver) -> Option<u64> {
    let window = receiver.catch_up;
    if window.max_age.is_zero() || window.max_messages == 0 {
        return None;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Some(snowflake_at(now.saturating_sub(window.max_age.as_millis() as u64)))
}

/// Direct chats: Discord does not list a bot's DMs, so the gateway's record of
/// recently active chats says which to look at (after the session is ready).
pub async fn direct(receiver: &Receiver, stop: &watch::Receiver<bool>) {
    let Some(cutoff) = cutoff(receiver) else { return };
    for chat in receiver.sink.recent_chats("discord", receiver.catch_up.max_age).await {
        if *stop.borrow() {
            return;
        }
        if chat.thread.is_some() || receiver.places.resolve(&receiver.rest, &chat.chat, None).await.guild.is_some() {
            continue; // Guild channels are caught up when their guild is announced.
        }
        channel_since(receiver, &chat.chat, cutoff, stop).await;
    }
}

/// Fetches and hands over what `guild`'s channels received within the window.
pub async fn guild(receiver: &Receiver, guild: &str, stop: &watch::Receiver<bool>) {
    let Some(cutoff) = cutoff(receiver) else { return };
    let active = receiver
        .places
        .in_guild(guild)
        .into_iter()
        .filter(|(_, last)| last.as_deref().and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > cutoff));
    for (channel, _) in active {
        if *stop.borrow() {
            return;
        }
        channel_since(receiver, &channel, cutoff, stop).await;
    }
}

/// The newest messages of one channel after `cutoff` (a snowflake), oldest first.
async fn channel_since(receiver: &Receiver, channel: &str, cutoff: u64, stop: &watch::Receiver<bool>) {
    let path = format!("/channels/{channel}/messages?limit={}", receiver.catch_up.max_messages.min(100));
    let messages: Vec<Message> = match receiver.rest.get(&path).await.map(serde_json::from_value) {
        Ok(Ok(messages)) => messages,
        Ok(Err(e)) => return tracing::warn!(error = %e, "discord: unreadable message history skipped"),
        // No access to read the history (a channel the bot only sees), or trouble.
        Err(e) => return tracing::debug!(error = ?e, %channel, "discord: could not read a channel's recent messages"),
    };
    let mut missed: Vec<Message> =
        messages.into_iter().filter(|m| m.id.parse::<u64>().is_ok_and(|id| id > cutoff)).collect();
    missed.sort_by_key(|m| m.id.parse::<u64>().unwrap_or(0));
    let mut handed = 0;
    for mut message in missed {
        // History entries may lack the guild; the channel's place has it.
        if message.guild_id.is_none() {
            message.guild_id = receiver.places.resolve(&receiver.rest, channel, None).await.guild;
        }
        if let Some(event) = receiver.message(&message).await {
            receiver.hand_over(event, stop).await;
            handed += 1;
        }
    }
    if handed > 0 {
        tracing::info!(count = handed, "discord: recent messages handed to the gateway after connecting");
    }
}
