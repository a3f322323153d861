//! The outbox's storage: a reply (or an approval prompt) is stored before it is
//! sent, and each part is
//! marked delivered as it goes, so after a restart what was not delivered is sent
//! and what was is not sent again. A reply answering a journal event is stored at
//! most once per event (a replay or a redelivery finds the event marked answered,
//! or the reply's note): while a reply waits to be sent, its events and its note
//! are kept past their age ([`Outbox::prune`]). Who sends, and when, is `delivery`'s
//! business.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ApprovalPrompt, ChatKey, Interaction, SendOptions, SentRef, Visibility};

use super::journal::{decode, encode, Journal};
use crate::store::{blocking, now_ms, KvBatch, Lease, Store, StoreResult};

const SPACE: &str = "outbox";
/// Replies stored for sending (or shown as streamed), by their transcript entry
/// id, with when (ms): a reply that answered several messages is sent once, even
/// when the others are replayed after a crash.
const REPLIED: &str = "replied";
/// Where earlier versions indexed the items by the events they answer (`e:` and
/// the event's id) and the transcript entries they begin with (`r:` and the
/// entry's id). This one keeps the events and notes that find a reply for as
/// long as it waits instead; an earlier version did not, so its keys are read
/// while any may be left ([`Outbox::settle_old_index`]).
const OLD_INDEX: &str = "outbox-index";

/// A reply on its way to a chat, as the agent or the gateway wrote it (Markdown).
/// It is split into parts that fit the channel when delivered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outbound {
    pub text: String,
    /// The platform message the first part replies to (in groups).
    pub reply_to: Option<String>,
    /// The interaction the reply answers (a slash command): the first part is its
    /// response, later parts continue it.
    #[serde(default)]
    pub interaction: Option<Interaction>,
    /// Who sees it.
    #[serde(default)]
    pub visibility: Visibility,
    /// An approval prompt shown instead of `text` (which holds its question).
    #[serde(default)]
    pub prompt: Option<PromptPart>,
}

/// An approval request's prompt on its way to a chat, with its buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptPart {
    pub approval_id: String,
    pub prompt: ApprovalPrompt,
    /// The chat the request was asked in (this one, or where an approver is
    /// asked on its behalf).
    pub asked_in: ChatKey,
}

impl OutboxItem {
    /// How part `index` is sent: only the first replies; every part carries the
    /// interaction it answers (the first as its response, later ones continuing
    /// it) and a key of its own that stays the same across attempts.
    pub fn options(&self, index: usize) -> SendOptions {
        SendOptions {
            reply_to: self.message.reply_to.clone().filter(|_| index == 0),
            interaction: self.message.interaction.clone(),
            part: index,
            visibility: self.message.visibility.clone(),
            // The time makes it unique beyond this store (a fresh data directory
            // numbers from 1 again).
            idempotency_key: Some(format!("sb-{}-{}-{index}", self.created_at, self.seq)),
        }
    }
}

/// A message a reply was being streamed into, and what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streamed {
    pub sent: SentRef,
    /// Its plain text as last shown: an edit to the same text is skipped.
    pub shown: String,
}

/// What storing a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored<C = ()> {
    /// Stored, with what the caller's claim on its new sequence number gave.
    New(C),
    /// The event already has a stored reply (a replay): nothing stored.
    AlreadyAnswered,
    /// The chat's lease, presented as the write's fence, is no longer held:
    /// another replica answers; nothing stored.
    NotOwner,
}

impl<C> Stored<C> {
    /// What happened, without the claim (for logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Stored::New(_) => "stored",
            Stored::AlreadyAnswered => "already answered",
            Stored::NotOwner => "not the chat's holder",
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
    /// What that message shows (plain), when known.
    #[serde(default)]
    pub stream_shown: Option<String>,
    pub delivered_parts: usize,
    /// When it was stored (ms); very old undeliverable items are dropped.
    #[serde(default)]
    pub created_at: u64,
    /// The journal events this reply answers (several for collected messages).
    #[serde(default, deserialize_with = "one_or_many")]
    pub answers: Vec<String>,
    /// The transcript entry the reply begins with, when it is the agent's.
    #[serde(default)]
    pub reply_entry: Option<String>,
}

/// `answers` as stored before batches (one event id or none) and since (a list).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answers {
        One(Option<String>),
        Many(Vec<String>),
    }
    Ok(match Answers::deserialize(d)? {
        Answers::One(one) => one.into_iter().collect(),
        Answers::Many(many) => many,
    })
}

#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    /// Whether keys an earlier version wrote to [`OLD_INDEX`] may be left
    /// (until a start alone on the store finds none).
    old_index: Arc<AtomicBool>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>) -> Outbox {
        Outbox { store, old_index: Arc::new(AtomicBool::new(true)) }
    }

    /// A fresh sequence number (tests store items by hand with it).
    #[cfg(test)]
    pub async fn next_seq(&self) -> StoreResult<u64> {
        blocking(&self.store, |s| s.next_id()).await
    }

    /// Stores a reply as a new item, unless the event it answers has one already,
    /// or the reply (`reply_entry`) was stored or shown for another event. The
    /// events it answers are marked answered in the same write (tell the
    /// journal's in-memory count with [`Journal::answered`]). With `fence` (a
    /// replica's lease on the chat), only while that lease is still held.
    ///
    /// `claim` is given the item (its new sequence number) before the item is
    /// written, in the same store call: whoever claims the number owns the item
    /// before anyone else (the retry loop) can see it, and no call of its own is
    /// spent on numbering.
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue<C: Send + 'static>(
        &self,
        chat: ChatKey,
        message: Outbound,
        streamed: Option<Streamed>,
        answers: Vec<String>,
        reply_entry: Option<String>,
        fence: Option<Lease>,
        claim: impl FnOnce(&OutboxItem) -> C + Send + 'static,
    ) -> StoreResult<Stored<C>> {
        let old_index = self.old_index.load(Ordering::SeqCst);
        blocking(&self.store, move |s| {
            // Its reply was stored (still waiting, or sent) or shown before.
            if let Some(entry) = &reply_entry {
                if s.kv_get(REPLIED, entry)?.is_some() {
                    return Ok(Stored::AlreadyAnswered);
                }
            }
            // Stored by an earlier version, still waiting, its event or note
            // perhaps forgotten by then (a key whose item is gone counts for nothing).
            if old_index {
                for index in old_keys(&answers, reply_entry.as_deref()) {
                    if let Some(item) = s.kv_get(OLD_INDEX, &index)? {
                        if leads_to_an_item(s, &item)? {
                            return Ok(Stored::AlreadyAnswered);
                        }
                    }
                }
            }
            // The item, the note of its reply and its events marked answered: all
            // or none, so a crash never leaves a stored reply whose event replays.
            let mut batch = KvBatch::new();
            for event in &answers {
                if Journal::mark_done_in(s, event, &mut batch)? {
                    return Ok(Stored::AlreadyAnswered);
                }
            }
            let (stream_message, stream_shown) = match streamed {
                Some(Streamed { sent, shown }) => (Some(sent), Some(shown)),
                None => (None, None),
            };
            let seq = s.next_id()?;
            let item = OutboxItem {
                seq,
                chat,
                message,
                stream_message,
                stream_shown,
                delivered_parts: 0,
                created_at: now_ms(),
                answers,
                reply_entry,
            };
            batch.put(SPACE, &key(item.seq), encode(&item));
            if let Some(entry) = &item.reply_entry {
                batch.put(REPLIED, entry, encode(&item.created_at));
            }
            let claimed = claim(&item);
            match s.kv_write_under(fence.as_ref(), &batch)? {
                true => Ok(Stored::New(claimed)),
                false => Ok(Stored::NotOwner),
            }
        })
        .await
    }

    /// The stored item as it is now (`None` once delivered).
    pub async fn get(&self, seq: u64) -> StoreResult<Option<OutboxItem>> {
        crate::store::read(&self.store, move |s| Ok(s.kv_get(SPACE, &key(seq))?.and_then(|v| decode(&v)))).await
    }

    pub async fn pending(&self) -> StoreResult<Vec<OutboxItem>> {
        blocking(&self.store, |s| Ok(s.kv_scan(SPACE, "")?.into_iter().filter_map(|(_, v)| decode(&v)).collect())).await
    }

    /// Records that one more part is delivered.
    /// With `fence` (a replica's lease on the chat), only while it is held;
    /// whether it was recorded.
    pub async fn mark(&self, item: &OutboxItem, fence: Option<Lease>) -> StoreResult<bool> {
        let stored = item.clone();
        blocking(&self.store, move |s| {
            s.kv_write_under(fence.as_ref(), KvBatch::new().put(SPACE, &key(stored.seq), encode(&stored)))
        })
        .await
    }

    /// Notes a reply as shown without an item (the streamed message was all of it).
    pub async fn replied(&self, reply_entry: String) -> StoreResult<()> {
        blocking(&self.store, move |s| s.kv_put(REPLIED, &reply_entry, &encode(&now_ms()))).await
    }

    /// Forgets the journal's answered events and the notes of replies older
    /// than `age_ms` (platforms never redeliver such events, and a replay skips
    /// answered ones), except those of replies still waiting to be sent: they
    /// are what finds such a reply when its event is replayed or redelivered.
    /// The waiting items are read in the same store task as the forgetting. How
    /// many were forgotten.
    pub async fn prune(&self, age_ms: u64) -> StoreResult<usize> {
        let cutoff = now_ms().saturating_sub(age_ms);
        blocking(&self.store, move |s| {
            let (mut events, mut entries) = (HashSet::new(), HashSet::new());
            for (_, value) in s.kv_scan(SPACE, "")? {
                if let Some(item) = decode::<OutboxItem>(&value) {
                    events.extend(item.answers);
                    entries.extend(item.reply_entry);
                }
            }
            let mut removed = Journal::prune_in(s, cutoff, &events)?;
            for (entry, at) in s.kv_scan(REPLIED, "")? {
                if decode::<u64>(&at).is_none_or(|at| at < cutoff) && !entries.contains(&entry) {
                    s.kv_remove(REPLIED, &entry)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Forgets a delivered (or undeliverable) item.
    pub async fn remove(&self, item: &OutboxItem) -> StoreResult<()> {
        let seq = key(item.seq);
        blocking(&self.store, move |s| s.kv_remove(SPACE, &seq)).await
    }

    /// At a start: forgets the keys an earlier version kept beside its items
    /// whose item is gone, and stops reading the rest when none is left and this
    /// process is `alone` on the store (with replicas, an older one may still
    /// write them). How many are left.
    pub async fn settle_old_index(&self, alone: bool) -> StoreResult<usize> {
        let left = blocking(&self.store, |s| {
            let keys = s.kv_scan(OLD_INDEX, "")?;
            let mut batch = KvBatch::new();
            for (index, item) in &keys {
                if !leads_to_an_item(s, item)? {
                    batch.remove(OLD_INDEX, index);
                }
            }
            let left = keys.len() - batch.ops().len();
            if !batch.is_empty() {
                s.kv_write(&batch)?;
            }
            Ok(left)
        })
        .await?;
        self.old_index.store(left > 0 || !alone, Ordering::SeqCst);
        Ok(left)
    }
}

/// The keys an earlier version indexed an item answering `answers` and
/// beginning with `reply_entry` by.
fn old_keys(answers: &[String], reply_entry: Option<&str>) -> Vec<String> {
    answers.iter().map(|event| format!("e:{event}")).chain(reply_entry.map(|entry| format!("r:{entry}"))).collect()
}

/// Whether an earlier version's index key, whose value is `item`, still leads
/// to a stored item (a key whose item is gone counts for nothing).
fn leads_to_an_item(store: &dyn Store, item: &[u8]) -> StoreResult<bool> {
    Ok(store.kv_get(SPACE, &String::from_utf8_lossy(item))?.is_some())
}

fn key(seq: u64) -> String {
    format!("{seq:020}")
}
