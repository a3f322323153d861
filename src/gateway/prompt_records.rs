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

    /// Every recorded copy of the request's prompt, oldest first.
    pub async fn copies(&self, approval_id: &str) -> Vec<Copy> {
        let id = approval_id.to_string();
        let read = blocking(&self.store, move |s| {
            let mut copies = match s.kv_get(PROMPTS, &id)? {
                // Before copies were records of their own, and before they held many.
                Some(bytes) => decode::<Legacy>(&bytes)
                    .map(|l| l.copies)
                    .or_else(|| decode::<Copy>(&bytes).map(|c| vec![c]))
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            for (_, bytes) in s.kv_scan(PROMPTS, &format!("{id}/"))? {
                copies.extend(decode::<Copy>(&bytes));
            }
            Ok(copies)
        });
        read.await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read where a prompt was shown");
            Vec::new()
        })
    }

    /// Records a copy shown by outbox item `seq` (its key keeps copies in order).
    pub async fn add(&self, approval_id: &str, seq: u64, copy: Copy) -> StoreResult<()> {
        let key = format!("{approval_id}/{seq:020}");
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

    /// How the request stands: its state and who decided it (`None` if unknown).
    pub async fn state(&self, approval_id: &str) -> Option<(ApprovalState, Option<String>)> {
        let id = approval_id.to_string();
        let record = blocking(&self.store, move |s| s.approval(&id)).await.ok().flatten()?;
        Some((record.state, record.decided_by))
    }
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
        records.forget("apr-1").await;
        assert!(records.copies("apr-1").await.is_empty());
    }
}
