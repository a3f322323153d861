//! Where each approval request's prompt was shown: one durable record per shown
//! copy (kept apart so copies delivered at the same moment never overwrite each
//! other), read when the request ends to replace every copy's buttons.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ChatKey, SentRef};

use super::journal::{decode, encode};
use crate::store::{blocking, ApprovalState, Store, StoreResult};

const PROMPTS: &str = "approval-prompts";

/// One place a request was shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Copy {
    pub chat: ChatKey,
    pub sent: SentRef,
    /// The chat the request was asked in (where its turn continues); `None` in
    /// records from before it was kept, where the first copy's chat is it.
    #[serde(default)]
    pub asked_in: Option<ChatKey>,
}

/// Every place a request was shown, in one record (as versions before
/// per-copy records stored them: still read).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Legacy {
    copies: Vec<Copy>,
}

/// The records of shown prompts. Cheap to clone.
#[derive(Clone)]
pub struct PromptRecords {
    store: Arc<dyn Store>,
}

impl PromptRecords {
    pub fn new(store: Arc<dyn Store>) -> PromptRecords {
        PromptRecords { store }
    }

    /// Every recorded copy of the request's prompt, oldest first; none (logged)
    /// when they cannot be read.
    pub async fn copies(&self, approval_id: &str) -> Vec<Copy> {
        self.read_copies(approval_id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read where a prompt was shown");
            Vec::new()
        })
    }

    /// Every recorded copy of the request's prompt, oldest first.
    pub async fn read_copies(&self, approval_id: &str) -> StoreResult<Vec<Copy>> {
        let id = approval_id.to_string();
        let read = crate::store::read(&self.store, move |s| {
            let mut copies = match s.kv_get(PROMPTS, &id)? {
                // Before copies were records of their own, and before they held many.
                Some(bytes) => decode::<Legacy>(&bytes)
                    .map(|l| l.copies)
                    .or_else(|| decode::<Copy>(&bytes).map(|c| vec![c]))
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for (key, bytes) in s.kv_scan(PROMPTS, &format!("{id}/"))? {
                if key != asked_key(&id) {
                    copies.extend(decode::<Copy>(&bytes));
                }
            }
            Ok(copies)
        });
        read.await
    }

    /// Whether outbox item `seq` showed a copy already (it was recorded, then the
    /// process died before the item was removed).
    pub async fn shown_by(&self, approval_id: &str, seq: u64) -> StoreResult<bool> {
        let key = copy_key(approval_id, seq);
        crate::store::read(&self.store, move |s| Ok(s.kv_get(PROMPTS, &key)?.is_some())).await
    }

    /// Records a copy shown by outbox item `seq` (its key keeps copies in order).
    pub async fn add(&self, approval_id: &str, seq: u64, copy: Copy) -> StoreResult<()> {
        let key = copy_key(approval_id, seq);
        blocking(&self.store, move |s| s.kv_put(PROMPTS, &key, &encode(&copy))).await
    }

    /// Forgets every copy of the request.
    pub async fn forget(&self, approval_id: &str) {
        let id = approval_id.to_string();
        let forgotten = blocking(&self.store, move |s| {
            s.kv_remove(PROMPTS, &id)?;
            for (key, _) in s.kv_scan(PROMPTS, &format!("{id}/"))? {
                s.kv_remove(PROMPTS, &key)?;
            }
            Ok(())
        });
        if let Err(e) = forgotten.await {
            tracing::warn!(error = %e, "cannot forget a prompt's copies");
        }
    }

    /// How the request stands: its state and who decided it (`None`: no such
    /// request). A store error is an error: the caller must not take it for an end.
    pub async fn state(&self, approval_id: &str) -> StoreResult<Option<(ApprovalState, Option<String>)>> {
        let id = approval_id.to_string();
        let record = crate::store::read(&self.store, move |s| s.approval(&id)).await?;
        Ok(record.map(|r| (r.state, r.decided_by)))
    }

    /// Notes the chat the request was asked in, before any copy is shown (a
    /// decision then finds where its turn continues even if none ever was).
    pub async fn set_asked_in(&self, approval_id: &str, chat: &ChatKey) -> StoreResult<()> {
        let (key, chat) = (asked_key(approval_id), chat.clone());
        blocking(&self.store, move |s| s.kv_put(PROMPTS, &key, &encode(&chat))).await
    }

    /// The chat the request was asked in, as noted when its prompts were queued
    /// (or, for records from before, as its shown copies say).
    pub async fn asked_in(&self, approval_id: &str) -> Option<ChatKey> {
        let key = asked_key(approval_id);
        let noted = crate::store::read(&self.store, move |s| s.kv_get(PROMPTS, &key)).await.ok().flatten();
        if let Some(chat) = noted.and_then(|b| decode::<ChatKey>(&b)) {
            return Some(chat);
        }
        let copies = self.copies(approval_id).await;
        copies.iter().find_map(|c| c.asked_in.clone()).or_else(|| copies.first().map(|c| c.chat.clone()))
    }

    /// Forgets one copy (shown after its request had ended and been resolved).
    pub async fn forget_copy(&self, approval_id: &str, seq: u64) {
        let key = copy_key(approval_id, seq);
        if let Err(e) = blocking(&self.store, move |s| s.kv_remove(PROMPTS, &key)).await {
            tracing::warn!(error = %e, "cannot forget a prompt's copy");
        }
    }
}

fn copy_key(approval_id: &str, seq: u64) -> String {
    format!("{approval_id}/{seq:020}")
}

/// Sorts after every copy's key (digits), so copies stay in order.
fn asked_key(approval_id: &str) -> String {
    format!("{approval_id}/asked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[tokio::test]
    async fn copies_are_records_of_their_own_and_old_records_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let records = PromptRecords::new(store.clone());
        let old = br#"{"chat":{"channel":"fake","account":"b","chat":"1","thread":null},"sent":{"message_id":"9"}}"#;
        store.kv_put(PROMPTS, "apr-1", old).unwrap();
        let chat = ChatKey { channel: "fake".into(), account: "b".into(), chat: "2".into(), thread: None };
        let copy = Copy { chat: chat.clone(), sent: SentRef { message_id: "10".into() }, asked_in: None };
        records.add("apr-1", 7, copy).await.unwrap();
        let ids: Vec<String> = records.copies("apr-1").await.into_iter().map(|c| c.sent.message_id).collect();
        assert_eq!(ids, ["9", "10"], "the old record first, then the copies in order");
        assert!(records.copies("apr-10").await.is_empty(), "another request's prefix does not match");
        assert_eq!(
            records.asked_in("apr-1").await.map(|c| c.chat),
            Some("1".into()),
            "the first copy's, for old records"
        );
        records.set_asked_in("apr-1", &chat).await.unwrap();
        assert_eq!(records.asked_in("apr-1").await, Some(chat.clone()), "noted before anything was shown");
        assert_eq!(records.copies("apr-1").await.len(), 2, "the note is no copy");
        records.forget("apr-1").await;
        assert!(records.copies("apr-1").await.is_empty());
        assert_eq!(records.asked_in("apr-1").await, None);
    }
}
