//! The Bot API client: a teloxide `Bot`, bounded retries, and chat keys as Telegram ids.

use std::future::Future;
use std::time::Duration;

use switchboard_channel_core::{ChannelError, ChatKey};
use teloxide::types::{ChatId, MessageId, ThreadId};
use teloxide::{Bot, RequestError};
use tokio::time::Instant;

use crate::errors::{classify, Class, Redactor};

/// Telegram's longest text, in UTF-16 units.
pub(crate) const MAX_TEXT_UTF16: usize = 4096;

#[derive(Clone)]
pub(crate) struct Api {
    pub bot: Bot,
    pub redactor: Redactor,
}

/// How hard to try one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub max_attempts: u32,
    /// Never retry past this much time since the first attempt.
    pub budget: Duration,
    /// Sleep through a 429 (`retry_after`) and retry; otherwise return it at once.
    pub wait_on_rate_limit: bool,
}

impl Policy {
    /// Start-up calls (getMe, setMyCommands, webhook set-up): patient, because the
    /// channel cannot work without them. Never used for what the gateway sends.
    pub const START: Policy = Policy { max_attempts: 5, budget: Duration::from_secs(60), wait_on_rate_limit: true };
    /// Everything the gateway asks for: one attempt, classified; the gateway's
    /// outbox decides about retries.
    pub const ONCE: Policy = Policy { max_attempts: 1, budget: Duration::ZERO, wait_on_rate_limit: false };
}

const FIRST_NETWORK_DELAY: Duration = Duration::from_millis(500);
const MAX_NETWORK_DELAY: Duration = Duration::from_secs(8);

impl Api {
    /// Runs `call` until it succeeds, fails for good, or the policy's attempts
    /// or time budget run out; returns the last error as teloxide gave it, so
    /// callers can still recognise "not modified" or "can't parse entities".
    pub async fn retry<T, F, Fut>(&self, method: &'static str, policy: Policy, mut call: F) -> Result<T, RequestError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        let started = Instant::now();
        let mut network_delay = FIRST_NETWORK_DELAY;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match call().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let wait = match classify(&err) {
                Class::Rejected => return Err(err),
                Class::RateLimited(_) if !policy.wait_on_rate_limit => return Err(err),
                Class::RateLimited(wait) => wait,
                Class::Transient => {
                    let wait = network_delay;
                    network_delay = (network_delay * 2).min(MAX_NETWORK_DELAY);
                    wait
                }
            };
            if attempt >= policy.max_attempts || started.elapsed() + wait > policy.budget {
                tracing::warn!(method, attempt, error = %self.redactor.describe(&err), "telegram: giving up");
                return Err(err);
            }
            tracing::debug!(method, attempt, ?wait, error = %self.redactor.describe(&err), "telegram: retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Where a chat key points on Telegram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub chat: ChatId,
    pub thread: Option<ThreadId>,
}

pub(crate) fn target(key: &ChatKey) -> Result<Target, ChannelError> {
    if key.channel != "telegram" {
        return Err(ChannelError::Rejected(format!("telegram: chat {} belongs to another channel", key.id())));
    }
    let chat = key
        .chat
        .parse::<i64>()
        .map_err(|_| ChannelError::Rejected(format!("telegram: chat id {:?} is not a number", key.chat)))?;
    let thread = match &key.thread {
        Some(thread) => Some(ThreadId(message_id(thread, "thread id")?)),
        None => None,
    };
    Ok(Target { chat: ChatId(chat), thread })
}

pub(crate) fn message_id(raw: &str, what: &str) -> Result<MessageId, ChannelError> {
    raw.parse::<i32>()
        .map(MessageId)
        .map_err(|_| ChannelError::Rejected(format!("telegram: {what} {raw:?} is not a Telegram message id")))
}

/// Cuts `text` to at most `max` UTF-16 units, ending with "…" when cut.
pub(crate) fn truncate_utf16(text: &str, max: usize) -> String {
    if text.encode_utf16().count() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut units = 0;
    for c in text.chars() {
        if units + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        units += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_utf16_units() {
        assert_eq!(truncate_utf16("short", 10), "short");
        let cut = truncate_utf16(&"😀".repeat(10), 7);
        assert_eq!(cut, "😀😀😀…");
        assert!(cut.encode_utf16().count() <= 7);
    }

    #[test]
    fn chat_keys_of_other_channels_or_with_bad_ids_are_rejected() {
        let mut key = ChatKey { channel: "telegram".into(), account: "1".into(), chat: "-100".into(), thread: None };
        assert_eq!(target(&key).expect("valid").chat, ChatId(-100));
        key.thread = Some("7".into());
        assert_eq!(target(&key).expect("valid").thread, Some(ThreadId(MessageId(7))));
        key.thread = Some("x".into());
        assert!(target(&key).is_err());
        key.channel = "slack".into();
        assert!(target(&key).is_err());
    }
}
