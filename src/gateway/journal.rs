//! The inbound journal: every platform event is stored, and deduplicated by its
//! platform id, before the adapter acknowledges it to the platform. Events not yet
//! answered are replayed in arrival order after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{InboundEvent, InboundKind, RecentChat, SentRef};

use super::outbox::Streamed;
use crate::keyed::KeyedLocks;
use crate::store::{blocking, now_ms, KvBatch, Lease, Store, StoreResult};

const RECORDS: &str = "journal";
const ORDER: &str = "journal-order";
/// The unanswered events alone, in arrival order (sequence number → id): what a
/// restart replays and replicas look through, without reading the answered ones.
const OPEN: &str = "journal-open";
/// Notes on the journal's own shape (`open-index`: `OPEN` is complete).
const META: &str = "journal-meta";

/// An event as journaled. `E` is how its event is read: built (the default), or
/// left as the JSON it is ([`StoredRecord`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalRecord<E = InboundEvent> {
    pub seq: u64,
    pub event: E,
    pub done: bool,
    pub received_at: u64,
    /// The message a streamed reply was being written into, so a replay after a
    /// crash finishes that message instead of leaving it half-written.
    pub stream_message: Option<SentRef>,
    /// What that message shows (plain), so the replay edits it only to change it.
    #[serde(default)]
    pub stream_shown: Option<String>,
    /// When it was marked answered (ms): what its age for forgetting counts
    /// from (records an earlier version marked count from `received_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<u64>,
}

/// A journal record with its event left as the JSON it is: marking an event
/// answered changes only `done`, and building the event to write it back
/// unchanged cost more than the rest of the marking.
type StoredRecord = JournalRecord<Box<serde_json::value::RawValue>>;

#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    /// Unanswered events this process handles, as it saw them recorded,
    /// replayed and answered: what metrics count without a scan of the store,
    /// and (with replicas) which chats have work here.
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    /// Deliveries of one event id are recorded one after the other: a second
    /// delivery at the same moment sees the first's outcome, not a record
    /// stored but not yet counted as handled here (which it would take up too).
    recording: KeyedLocks,
}

/// What recording an inbound event found ([`Journal::record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored by this call: handle it (no process had stored it before).
    Now,
    /// Stored before, but never handed over in this process: handle it (an
    /// attempt elsewhere may have begun to answer it).
    Before,
    /// Being handled, or answered: a redelivery, not handled twice.
    Duplicate,
}

/// An unanswered event handled here.
#[derive(Debug, Clone)]
struct Pending {
    /// When it was received (ms).
    at: u64,
    /// Its chat (`ChatKey::id`).
    chat: String,
}

impl Pending {
    fn of(record: &JournalRecord) -> Pending {
        Pending { at: record.received_at, chat: record.event.kind.chat().id() }
    }
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Journal {
        Journal { store, pending: Arc::default(), recording: KeyedLocks::new() }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many events wait for an answer, and when the oldest arrived (ms).
    pub fn pending_summary(&self) -> (usize, Option<u64>) {
        let pending = self.pending();
        (pending.len(), pending.values().map(|p| p.at).min())
    }

    /// Whether an event of `chat` is unanswered here.
    pub fn has_pending(&self, chat: &str) -> bool {
        self.pending().values().any(|p| p.chat == chat)
    }

    /// Whether this process handles the unanswered event `event_id`.
    pub fn handles(&self, event_id: &str) -> bool {
        self.pending().contains_key(event_id)
    }

    /// Takes an unanswered event recorded by any process for handling here;
    /// false when this process handles it already.
    pub fn adopt(&self, record: &JournalRecord) -> bool {
        let mut pending = self.pending();
        if pending.contains_key(&record.event.event_id) {
            return false;
        }
        pending.insert(record.event.event_id.clone(), Pending::of(record));
        true
    }

    /// Hands an event back unanswered: another replica holds its chat, and it or
    /// the chat's next holder answers it.
    pub fn disown(&self, event_id: &str) {
        self.pending().remove(event_id);
    }

    /// Stores the event; whether this run must handle it: [`Recorded::Now`] for
    /// one stored by this call; [`Recorded::Before`] for one stored before but
    /// never handed over here, as when this run saw its write fail but it landed
    /// after all (a flush that failed late, a commit whose answer was lost): its
    /// redelivery is the only chance to handle it before a restart;
    /// [`Recorded::Duplicate`] for a redelivery of one being (or already) handled.
    pub async fn record(&self, event: &InboundEvent) -> StoreResult<Recorded> {
        let _one_at_a_time = self.recording.lock(&event.event_id).await;
        let (event, id, chat) = (event.clone(), event.event_id.clone(), event.kind.chat().id());
        let received_at = now_ms();
        let recorded = blocking(&self.store, move |s| {
            let seq = s.next_id()?;
            let id = event.event_id.clone();
            let record = JournalRecord {
                seq,
                event,
                done: false,
                received_at,
                stream_message: None,
                stream_shown: None,
                answered_at: None,
            };
            // The record and its place in the order together, only if this event
            // was not stored before (a redelivery; then it is on disk by the time
            // this answer is released).
            let mut batch = KvBatch::new();
            let place = format!("{seq:020}");
            batch.put(ORDER, &place, id.as_bytes()).put(OPEN, &place, id.as_bytes()).put(RECORDS, &id, encode(&record));
            s.kv_write_if_absent(RECORDS, &id, &batch)
        })
        .await?;
        if recorded {
            self.pending().insert(id, Pending { at: received_at, chat });
            return Ok(Recorded::Now);
        }
        // Replayed events are in `pending` from the start (replay runs before any
        // channel delivers), so an unanswered one missing there was never handed over.
        let stored = self.get(&id).await?;
        let mut pending = self.pending();
        match stored {
            Some(record) if !record.done && !pending.contains_key(&id) => {
                pending.insert(id, Pending::of(&record));
                Ok(Recorded::Before)
            }
            _ => Ok(Recorded::Duplicate),
        }
    }

    pub async fn get(&self, event_id: &str) -> StoreResult<Option<JournalRecord>> {
        let id = event_id.to_string();
        crate::store::read(&self.store, move |s| Ok(s.kv_get(RECORDS, &id)?.and_then(|b| decode(&b)))).await
    }

    /// The message a reply to `event_id` was streamed into, and what it showed,
    /// as an earlier attempt noted it (read errors count as none).
    pub async fn streamed(&self, event_id: &str) -> Option<Streamed> {
        let record = self.get(event_id).await.ok().flatten()?;
        Some(Streamed { sent: record.stream_message?, shown: record.stream_shown.unwrap_or_default() })
    }

    /// Marks the event answered (its reply, if any, is stored by now).
    pub async fn done(&self, event_id: &str) -> StoreResult<()> {
        let id = event_id.to_string();
        blocking(&self.store, move |s| {
            let mut batch = KvBatch::new();
            Journal::mark_done_in(s, &id, &mut batch)?;
            if batch.is_empty() {
                return Ok(());
            }
            s.kv_write(&batch)
        })
        .await?;
        self.pending().remove(event_id);
        Ok(())
    }

    /// Notes the message a reply streams into and what it shows now. With
    /// `fence` (a replica's lease on the event's chat), only while that lease is
    /// still held. Whether it was noted (not when the event is answered or
    /// gone, or the lease lost).
    pub async fn set_stream_message(
        &self,
        event_id: &str,
        sent: SentRef,
        shown: String,
        fence: Option<Lease>,
    ) -> StoreResult<bool> {
        let id = event_id.to_string();
        blocking(&self.store, move |s| {
            // An answered record is left alone: written back, a note read before
            // its marking would take the marking back. The marking is read and
            // written by the chat's holder, so with replicas the note is written
            // under the chat's lease: once another replica holds the chat (and
            // may mark the event answered), a note read before it is refused.
            let Some(mut record) = s.kv_get(RECORDS, &id)?.and_then(|b| decode::<JournalRecord>(&b)) else {
                return Ok(false);
            };
            if record.done {
                return Ok(false);
            }
            record.stream_message = Some(sent);
            record.stream_shown = Some(shown);
            s.kv_write_under(fence.as_ref(), KvBatch::new().put(RECORDS, &id, encode(&record)))
        })
        .await
    }

    /// Adds to `batch` the marking of `event_id` as answered (read in the caller's
    /// store task); nothing when the event is not stored or already marked.
    /// Whether it was marked answered before (then nothing is added). Call
    /// [`Journal::answered`] once the batch is written. The record is read before
    /// the batch is applied, so a concurrent change to it would be overwritten:
    /// safe because an event's record changes only within its own turn, which has
    /// finished streaming by the time its reply is stored.
    pub fn mark_done_in(store: &dyn Store, event_id: &str, batch: &mut KvBatch) -> StoreResult<bool> {
        let Some(mut record) = store.kv_get(RECORDS, event_id)?.and_then(|b| decode::<StoredRecord>(&b)) else {
            return Ok(false);
        };
        if record.done {
            return Ok(true);
        }
        record.done = true;
        record.answered_at = Some(now_ms());
        batch.put(RECORDS, event_id, encode(&record)).remove(OPEN, &format!("{:020}", record.seq));
        Ok(false)
    }

    /// Notes events as answered by a batch of [`Journal::mark_done_in`] now written.
    pub fn answered(&self, event_ids: &[String]) {
        let mut pending = self.pending();
        for id in event_ids {
            pending.remove(id);
        }
    }

    /// Events received but not answered, oldest first, all taken for handling
    /// here (alone on the store, after a restart).
    pub async fn unfinished(&self) -> StoreResult<Vec<JournalRecord>> {
        self.unanswered().await.inspect(|records: &Vec<JournalRecord>| {
            let mut pending = self.pending();
            for record in records {
                pending.insert(record.event.event_id.clone(), Pending::of(record));
            }
        })
    }

    /// Events received (by any process) but not answered, oldest first.
    pub async fn unanswered(&self) -> StoreResult<Vec<JournalRecord>> {
        blocking(&self.store, |s| {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for (place, id) in s.kv_scan(OPEN, "")? {
                let id = String::from_utf8_lossy(&id).into_owned();
                if !seen.insert(id.clone()) {
                    continue;
                }
                match s.kv_get(RECORDS, &id)?.and_then(|b| decode::<JournalRecord>(&b)) {
                    Some(record) if !record.done => out.push(record),
                    // Answered or gone: no longer open.
                    _ => s.kv_remove(OPEN, &place)?,
                }
            }
            Ok(out)
        })
        .await
    }

    /// Lists the unanswered events recorded since the last [`Journal::note_listed`]
    /// that are not listed yet: all of a journal written before the list
    /// existed, and any an older version recorded in between (a downgrade).
    /// Returns how many.
    pub async fn index_open(&self) -> StoreResult<usize> {
        blocking(&self.store, |s| {
            let through = s.kv_get(META, "open-through")?.map(|b| String::from_utf8_lossy(&b).into_owned());
            let through = through.unwrap_or_default();
            let mut batch = KvBatch::new();
            let mut last = through.clone();
            // In order: every place after `through` is newer than the last start's.
            for (place, id) in s.kv_scan(ORDER, "")?.into_iter().filter(|(place, _)| *place > through) {
                let key = String::from_utf8_lossy(&id).into_owned();
                if s.kv_get(RECORDS, &key)?.and_then(|b| decode::<JournalRecord>(&b)).is_some_and(|r| !r.done) {
                    batch.put(OPEN, &place, id);
                }
                last = place;
            }
            let listed = batch.ops().len();
            if last != through {
                batch.put(META, "open-through", last.into_bytes());
                s.kv_write(&batch)?;
            }
            Ok(listed)
        })
        .await
    }

    /// Notes every event recorded so far as listed (this version lists what it
    /// records as it records it), so the next start indexes only what an older
    /// version may record meanwhile. At a stop, and now and then.
    pub async fn note_listed(&self) -> StoreResult<()> {
        blocking(&self.store, |s| match s.kv_scan(ORDER, "")?.pop() {
            Some((last, _)) => s.kv_put(META, "open-through", last.as_bytes()),
            None => Ok(()),
        })
        .await
    }

    /// The chats of `channel` with a message or command received since
    /// `since_ms`, the most recently active first, each with its newest event.
    pub async fn recent_chats(&self, channel: &str, since_ms: u64) -> StoreResult<Vec<RecentChat>> {
        let channel = channel.to_string();
        blocking(&self.store, move |s| {
            // The journal's order is arrival order: a later record is newer.
            let mut newest: std::collections::HashMap<String, (u64, RecentChat)> = std::collections::HashMap::new();
            for (_, id) in s.kv_scan(ORDER, "")? {
                let id = String::from_utf8_lossy(&id).into_owned();
                let Some(record) = s.kv_get(RECORDS, &id)?.and_then(|b| decode::<JournalRecord>(&b)) else { continue };
                let kind = match &record.event.kind {
                    InboundKind::Message(m) => m.kind,
                    InboundKind::Command(c) => c.kind,
                    InboundKind::Click(_) => continue,
                };
                let chat = record.event.kind.chat();
                if chat.channel == channel && record.received_at >= since_ms {
                    let recent = RecentChat { chat: chat.clone(), kind, last_event: record.event.event_id.clone() };
                    newest.insert(chat.id(), (record.received_at, recent));
                }
            }
            let mut chats: Vec<(u64, RecentChat)> = newest.into_values().collect();
            chats.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            Ok(chats.into_iter().map(|(_, chat)| chat).collect())
        })
        .await
    }

    /// Forgets events answered before `cutoff` (ms; platforms never redeliver
    /// them), except those in `keep` (inside the caller's store task). An event
    /// answered by a reply that still waits is answered no earlier than its reply
    /// was stored, so a caller that reads the waiting replies first, in the same
    /// task, keeps every event a reply stored meanwhile answers. How many.
    pub fn prune_in(store: &dyn Store, cutoff: u64, keep: &HashSet<String>) -> StoreResult<usize> {
        let mut removed = 0;
        for (key, id) in store.kv_scan(ORDER, "")? {
            let id = String::from_utf8_lossy(&id).into_owned();
            if keep.contains(&id) {
                continue;
            }
            match store.kv_get(RECORDS, &id)?.map(|b| decode::<JournalRecord>(&b)) {
                Some(Some(r)) if !(r.done && r.answered_at.unwrap_or(r.received_at) < cutoff) => continue,
                // Answered long ago, or written by an older version in a shape
                // no longer read (it can never be handled): forgotten.
                Some(_) => store.kv_remove(RECORDS, &id)?,
                None => {}
            }
            store.kv_remove(ORDER, &key)?;
            removed += 1;
        }
        Ok(removed)
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use switchboard_channel_core::{ChatKey, ChatKind, Inbound, InboundKind, Sender};

    /// A direct message `id` (its text too) in chat `t:b:1`.
    pub(in crate::gateway) fn event(id: &str) -> InboundEvent {
        let chat = ChatKey { channel: "t".into(), account: "b".into(), chat: "1".into(), thread: None };
        let sender = Sender { id: "t:1".into(), name: "A".into(), is_bot: false };
        let message = Inbound {
            chat,
            kind: ChatKind::Direct,
            sender,
            text: id.into(),
            mentions_bot: false,
            reply_to_bot: false,
            message_id: "m".into(),
            timestamp: 0,
            space: None,
            interaction: None,
        };
        InboundEvent { event_id: id.into(), kind: InboundKind::Message(message) }
    }

    /// A platform that delivers one event twice at the same moment (a webhook
    /// retried while the first request waits for its flush; events handed over
    /// side by side): only one delivery is handled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_event_delivered_twice_at_once_is_handled_once() {
        for backend in crate::store::test_backends() {
            let journal = Journal::new(backend.store.clone());
            for n in 0..40 {
                let e = event(&format!("twice-{n}"));
                let (one, two) = (journal.clone(), journal.clone());
                let (e1, e2) = (e.clone(), e.clone());
                let first = tokio::spawn(async move { one.record(&e1).await.unwrap() });
                let second = tokio::spawn(async move { two.record(&e2).await.unwrap() });
                let mut handled = [first.await.unwrap(), second.await.unwrap()];
                handled.sort_by_key(|r| *r as u8);
                assert_eq!(handled, [Recorded::Now, Recorded::Duplicate], "on {}", backend.name);
            }
        }
    }

    /// A journal write whose flush failed may still have landed: the platform's
    /// redelivery (the adapter reported the failure) is then handled, once.
    #[tokio::test]
    async fn a_redelivery_after_a_write_that_failed_but_landed_is_handled_once() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let journal = Journal::new(sled.clone());
        sled.before_flush(Some(Box::new(|| Err("injected".into()))));
        assert!(journal.record(&event("e1")).await.is_err(), "the platform is told to deliver it again");
        sled.before_flush(None);
        let again = journal.record(&event("e1")).await.unwrap();
        assert_eq!(again, Recorded::Before, "stored, but never handed over: handle it");
        let third = journal.record(&event("e1")).await.unwrap();
        assert_eq!(third, Recorded::Duplicate, "now being handled: a plain duplicate");
        journal.done("e1").await.unwrap();
        assert_eq!(journal.record(&event("e1")).await.unwrap(), Recorded::Duplicate, "answered");
    }

    /// A journal written before the open list: its unanswered events are listed
    /// once at the next start, and found.
    #[tokio::test]
    async fn an_older_journal_gets_its_open_list() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let s = &backend.store;
            for (seq, id, done) in [(1u64, "old-done", true), (2, "old-open", false)] {
                let record = JournalRecord {
                    seq,
                    event: event(id),
                    done,
                    received_at: now_ms(),
                    stream_message: None,
                    stream_shown: None,
                    answered_at: None,
                };
                s.kv_put(RECORDS, id, &encode(&record)).unwrap();
                s.kv_put(ORDER, &format!("{seq:020}"), id.as_bytes()).unwrap();
            }
            let journal = Journal::new(s.clone());
            assert!(journal.unanswered().await.unwrap().is_empty(), "not listed yet");
            assert_eq!(journal.index_open().await.unwrap(), 1);
            let open: Vec<String> = journal.unanswered().await.unwrap().into_iter().map(|r| r.event.event_id).collect();
            assert_eq!(open, ["old-open"]);
            assert_eq!(journal.index_open().await.unwrap(), 0, "once");
            journal.done("old-open").await.unwrap();
            assert!(journal.unanswered().await.unwrap().is_empty());
            // An older version ran in between (a downgrade) and recorded one more.
            let record = JournalRecord {
                seq: 3,
                event: event("older-again"),
                done: false,
                received_at: now_ms(),
                stream_message: None,
                stream_shown: None,
                answered_at: None,
            };
            s.kv_put(RECORDS, "older-again", &encode(&record)).unwrap();
            s.kv_put(ORDER, &format!("{:020}", 3), b"older-again").unwrap();
            assert_eq!(journal.index_open().await.unwrap(), 1, "listed at the next start");
            assert_eq!(journal.unanswered().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn events_are_deduplicated_and_unanswered_ones_replayed_in_order() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let journal = Journal::new(backend.store.clone());
            for id in ["e3", "e1", "e2"] {
                assert_eq!(journal.record(&event(id)).await.unwrap(), Recorded::Now);
            }
            let again = journal.record(&event("e1")).await.unwrap();
            assert_eq!(again, Recorded::Duplicate, "a redelivery is recognised");
            journal.done("e1").await.unwrap();
            let left: Vec<String> = journal.unfinished().await.unwrap().into_iter().map(|r| r.event.event_id).collect();
            assert_eq!(left, ["e3", "e2"], "arrival order, answered ones skipped");
            assert_eq!(backend.store.kv_scan(OPEN, "").unwrap().len(), 2, "the answered one left the open list");

            let noted = journal.set_stream_message("e3", SentRef { message_id: "77".into() }, "so far".into(), None);
            assert!(noted.await.unwrap());
            let record = journal.get("e3").await.unwrap().unwrap();
            assert_eq!(
                (record.stream_message.unwrap().message_id, record.stream_shown.as_deref()),
                ("77".into(), Some("so far"))
            );
            // Pruning compares millisecond timestamps: let the clock move on first.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let prune = |keep: &[&str]| {
                let keep: HashSet<String> = keep.iter().map(|id| id.to_string()).collect();
                Journal::prune_in(&*backend.store, now_ms(), &keep).unwrap()
            };
            assert_eq!(prune(&["e1"]), 0, "an answered event kept is not forgotten");
            assert!(journal.get("e1").await.unwrap().is_some());
            assert_eq!(prune(&[]), 1, "only the answered event is forgotten");
            assert_eq!(journal.unfinished().await.unwrap().len(), 2);
            // Its age counts from its answer: received before the cutoff, answered
            // after it, it is kept.
            let received = journal.get("e2").await.unwrap().unwrap().received_at;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            journal.done("e2").await.unwrap();
            let answered = journal.get("e2").await.unwrap().unwrap().answered_at.expect("marked when");
            assert!(received < answered);
            // A late note of a streamed message leaves an answered record alone.
            let noted = journal.set_stream_message("e2", SentRef { message_id: "78".into() }, "late".into(), None);
            assert!(!noted.await.unwrap(), "answered: not noted");
            let record = journal.get("e2").await.unwrap().unwrap();
            assert!(record.done && record.stream_message.is_none());
            let none = HashSet::new();
            assert_eq!(Journal::prune_in(&*backend.store, answered, &none).unwrap(), 0);
            assert_eq!(Journal::prune_in(&*backend.store, answered + 1, &none).unwrap(), 1);
        }
    }

    /// Marking an event answered rewrites its record with `done` set and every
    /// other field as it was (the marking reads the record without building its
    /// event): a field the marking did not know would be lost here.
    #[tokio::test]
    async fn marking_an_event_answered_keeps_the_rest_of_its_record() {
        for backend in crate::store::test_backends() {
            let record = JournalRecord {
                seq: 41,
                event: event("kept"),
                done: false,
                received_at: 1_700_000_000_123,
                stream_message: Some(SentRef { message_id: "77".into() }),
                stream_shown: Some("so far <b>".into()),
                answered_at: None,
            };
            let store = &*backend.store;
            store.kv_put(RECORDS, "kept", &encode(&record)).unwrap();
            store.kv_put(OPEN, &format!("{:020}", record.seq), b"kept").unwrap();
            let mut batch = KvBatch::new();
            assert!(!Journal::mark_done_in(store, "kept", &mut batch).unwrap(), "not answered before");
            store.kv_write(&batch).unwrap();

            let stored = store.kv_get(RECORDS, "kept").unwrap().unwrap();
            let answered_at = decode::<JournalRecord>(&stored).unwrap().answered_at;
            assert!(answered_at.is_some_and(|at| at + 60_000 > now_ms()), "{answered_at:?}");
            let answered = JournalRecord { done: true, answered_at, ..record };
            let as_json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
            assert_eq!(as_json(&stored), as_json(&encode(&answered)), "on {}", backend.name);
            assert!(store.kv_scan(OPEN, "").unwrap().is_empty(), "it left the open list on {}", backend.name);
            // Marking it again finds it answered and changes nothing.
            let mut again = KvBatch::new();
            assert!(Journal::mark_done_in(store, "kept", &mut again).unwrap());
            assert!(again.is_empty(), "on {}", backend.name);
            assert!(!Journal::mark_done_in(store, "never recorded", &mut again).unwrap());
            assert!(again.is_empty(), "on {}", backend.name);
        }
    }
}
