//! The outbox's storage: a reply is stored before it is sent, and each part is
//! marked delivered as it goes, so after a restart what was not delivered is sent
//! and what was is not sent again. Who sends, and when, is `delivery`'s business.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ChatKey, Interaction, SendOptions, SentRef, Visibility};

use super::journal::{decode, encode};
use crate::store::{blocking, now_ms, Store, StoreResult};

const SPACE: &str = "outbox";

/// A reply on its way to a chat, as the agent or the gateway wrote it (Markdown).
/// It is split into parts that fit the channel when delivered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outbound {
    pub text: String,
    /// The platform message the first part replies to (in groups).
    pub reply_to: Option<String>,
    /// The interaction the first part answers (a slash command).
    #[serde(default)]
    pub interaction: Option<Interaction>,
    /// Who sees it.
    #[serde(default)]
    pub visibility: Visibility,
}

impl Outbound {
    /// How part `index` is sent: only the first replies or answers.
    pub fn options(&self, index: usize) -> SendOptions {
        SendOptions {
            reply_to: self.reply_to.clone().filter(|_| index == 0),
            interaction: self.interaction.clone().filter(|_| index == 0),
            visibility: self.visibility.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    pub seq: u64,
    pub chat: ChatKey,
    pub message: Outbound,
    /// A message already showing the streamed reply: the first part replaces it.
    pub stream_message: Option<SentRef>,
    pub delivered_parts: usize,
    /// When it was stored (ms); very old undeliverable items are dropped.
    #[serde(default)]
    pub created_at: u64,
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
            let item = OutboxItem {
                seq: s.next_id()?,
                chat,
                message,
                stream_message,
                delivered_parts: 0,
                created_at: now_ms(),
            };
            s.kv_put(SPACE, &key(item.seq), &encode(&item))?;
            Ok(item)
        })
        .await
    }

    /// The stored item as it is now (`None` once delivered).
    pub async fn get(&self, seq: u64) -> StoreResult<Option<OutboxItem>> {
        blocking(&self.store, move |s| Ok(s.kv_get(SPACE, &key(seq))?.and_then(|v| decode(&v)))).await
    }

    pub async fn pending(&self) -> StoreResult<Vec<OutboxItem>> {
        blocking(&self.store, |s| Ok(s.kv_scan(SPACE, "")?.into_iter().filter_map(|(_, v)| decode(&v)).collect())).await
    }

    /// Records that one more part is delivered.
    pub async fn mark(&self, item: &OutboxItem) -> StoreResult<()> {
        let stored = item.clone();
        blocking(&self.store, move |s| s.kv_put(SPACE, &key(stored.seq), &encode(&stored))).await
    }

    /// Forgets a delivered (or undeliverable) item.
    pub async fn remove(&self, seq: u64) -> StoreResult<()> {
        blocking(&self.store, move |s| s.kv_remove(SPACE, &key(seq))).await
    }
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}
