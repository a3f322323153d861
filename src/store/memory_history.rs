//! Who changed which memory block, from where and when: one record per edit,
//! kept on purpose (memory is shared by every conversation, so its changes are
//! worth an audit trail). Read with `switchboard agent memory history`.

use serde::{Deserialize, Serialize};

use super::{now_ms, Store, StoreResult};
use crate::policy::Tier;

const SPACE: &str = "memory-history";

/// One edit of one block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEdit {
    pub at: u64,
    pub label: String,
    /// `memory_insert`, `memory_replace`, `memory_rethink`, or `set` (the operator).
    pub how: String,
    /// The channel-scoped sender, or `console` for the operator.
    pub by: Option<String>,
    pub tier: Tier,
    /// The chat the edit came from.
    pub chat: Option<String>,
    pub before: String,
    pub after: String,
}

impl MemoryEdit {
    pub fn new(
        label: &str,
        how: &str,
        by: Option<String>,
        tier: Tier,
        chat: Option<String>,
        before: &str,
        after: &str,
    ) -> Self {
        MemoryEdit {
            at: now_ms(),
            label: label.to_string(),
            how: how.to_string(),
            by,
            tier,
            chat,
            before: before.to_string(),
            after: after.to_string(),
        }
    }
}

/// Appends an edit of `agent_id`'s block.
pub fn record_edit(store: &dyn Store, agent_id: &str, edit: &MemoryEdit) -> StoreResult<()> {
    let key = format!("{agent_id}/{}/{:020}", edit.label, store.next_id()?);
    let bytes = serde_json::to_vec(edit).map_err(|e| super::StoreError::Backend(e.to_string()))?;
    store.kv_put(SPACE, &key, &bytes)
}

/// Every edit of `agent_id`'s block `label`, oldest first.
pub fn edits(store: &dyn Store, agent_id: &str, label: &str) -> StoreResult<Vec<MemoryEdit>> {
    let found = store.kv_scan(SPACE, &format!("{agent_id}/{label}/"))?;
    Ok(found.into_iter().filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect())
}
