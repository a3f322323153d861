//! The outbox: a final reply is stored before it is sent, and each part is marked
//! delivered as it goes, so after a restart what was not delivered is sent and what
//! was is not sent again.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::markdown::parse;
use switchboard_channel_core::split::split;
use switchboard_channel_core::{Channel, ChannelError, ChatKey, Outbound, SentRef};

use super::journal::{decode, encode};
use crate::store::{blocking, Store, StoreResult};

const SPACE: &str = "outbox";
const MAX_ATTEMPTS: u32 = 6;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    pub seq: u64,
    pub chat: ChatKey,
    /// Split to the channel's limit when delivered.
    pub message: Outbound,
    /// A message already showing the streamed reply: the first part replaces it.
    pub stream_message: Option<SentRef>,
    pub delivered_parts: usize,
}

#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>) -> Outbox {
        Outbox { store }
    }

    pub async fn enqueue(
        &self,
        chat: ChatKey,
        message: Outbound,
        stream_message: Option<SentRef>,
    ) -> StoreResult<OutboxItem> {
        blocking(&self.store, move |s| {
            let item = OutboxItem { seq: s.next_id()?, chat, message, stream_message, delivered_parts: 0 };
            s.kv_put(SPACE, &key(item.seq), &encode(&item))?;
            Ok(item)
        })
        .await
    }

    pub async fn pending(&self) -> StoreResult<Vec<OutboxItem>> {
        blocking(&self.store, |s| Ok(s.kv_scan(SPACE, "")?.into_iter().filter_map(|(_, v)| decode(&v)).collect())).await
    }

    /// Sends what is left of `item`; returns whether it is fully delivered (and gone).
    pub async fn deliver(&self, channel: &dyn Channel, mut item: OutboxItem) -> StoreResult<bool> {
        let caps = channel.capabilities();
        let parts = split(&parse(&item.message.text), caps.max_message_len, caps.measure);
        while item.delivered_parts < parts.len() {
            let index = item.delivered_parts;
            let part = &parts[index];
            let sent = match (index, &item.stream_message) {
                (0, Some(streamed)) if caps.can_edit => {
                    match with_retries(|| channel.edit(&item.chat, streamed, part)).await {
                        Ok(()) => Ok(()),
                        // The streamed message is gone or cannot be edited: send anew.
                        Err(_) => with_retries(|| channel.send(&item.chat, part, item.message.reply_to.as_deref()))
                            .await
                            .map(|_| ()),
                    }
                }
                (0, _) => {
                    with_retries(|| channel.send(&item.chat, part, item.message.reply_to.as_deref())).await.map(|_| ())
                }
                _ => with_retries(|| channel.send(&item.chat, part, None)).await.map(|_| ()),
            };
            match sent {
                Ok(()) => {
                    item.delivered_parts += 1;
                    let stored = item.clone();
                    blocking(&self.store, move |s| s.kv_put(SPACE, &key(stored.seq), &encode(&stored))).await?;
                }
                Err(ChannelError::Rejected(why)) => {
                    // The platform will never take it (blocked bot, deleted chat).
                    tracing::warn!(chat = %item.chat.id(), reason = %why, "reply rejected by the platform; dropped");
                    break;
                }
                Err(e) => {
                    tracing::warn!(chat = %item.chat.id(), error = %e, "reply not delivered yet; kept for a retry");
                    return Ok(false);
                }
            }
        }
        let seq = item.seq;
        blocking(&self.store, move |s| s.kv_remove(SPACE, &key(seq))).await?;
        Ok(true)
    }
}

/// Retries rate limits (waiting as told) and transient failures (with backoff).
pub async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, ChannelError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ChannelError>>,
{
    let mut backoff = Duration::from_millis(200);
    for n in 1..=MAX_ATTEMPTS {
        match attempt().await {
            Err(ChannelError::RateLimited(wait)) if n < MAX_ATTEMPTS => {
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await
            }
            Err(ChannelError::Transient(_)) if n < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}
