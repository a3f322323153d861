//! Copying everything from one store into another, empty one (`switchboard store
//! migrate`), through the `Store` trait alone, so it works between any two backends.

use super::{Store, StoreError, StoreResult};

/// Key-space records written per batch.
const BATCH: usize = 500;

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub agents: usize,
    pub blocks: usize,
    pub conversations: usize,
    pub entries: usize,
    pub approvals: usize,
    pub grants: usize,
    pub audit: usize,
    pub records: usize,
    pub meta: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} agent(s), {} memory block(s), {} conversation(s) with {} transcript entries, \
             {} approval(s), {} grant(s), {} audit record(s), {} other record(s), {} setting(s)",
            self.agents,
            self.blocks,
            self.conversations,
            self.entries,
            self.approvals,
            self.grants,
            self.audit,
            self.records,
            self.meta
        )
    }
}

/// The metadata key each backend keeps for itself (its own schema version).
const OWN_META: &[&str] = &[super::schema::VERSION_KEY];

/// Copies every record of `from` into `to`, then reads both back and compares
/// them part by part. `to` must be empty: nothing is merged or overwritten.
/// Memory blocks and transcripts are copied with their agent and conversation;
/// any left behind by a deleted one are not. Leases are not copied: no process
/// holds one while the stores are closed, and nothing kept refers to a fence. Both stores must be closed to
/// everyone else (each backend's open makes sure of that).
pub fn copy_all(from: &dyn Store, to: &dyn Store) -> StoreResult<Copied> {
    let own_meta_only = to.metas()?.iter().all(|(key, _)| OWN_META.contains(&key.as_str()));
    let empty = to.agents()?.is_empty()
        && to.conversations(None)?.is_empty()
        && to.kv_spaces()?.is_empty()
        && to.approvals()?.is_empty()
        && to.grants(None)?.is_empty()
        && to.audit()?.is_empty()
        && own_meta_only;
    if !empty {
        return Err(StoreError::Backend(
            "the target store is not empty; migrate only into a new database or data directory".into(),
        ));
    }
    let mut copied = Copied::default();
    for (key, value) in from.metas()? {
        if !OWN_META.contains(&key.as_str()) {
            to.put_meta(&key, &value)?;
            copied.meta += 1;
        }
    }
    for agent in from.agents()? {
        for block in from.blocks(&agent.id)? {
            to.put_block(&agent.id, &block)?;
            copied.blocks += 1;
        }
        to.put_agent(&agent)?;
        copied.agents += 1;
    }
    for conversation in from.conversations(None)? {
        // In order; the record last, so its own times are kept exactly.
        for (_, entry) in from.entries(&conversation.id)? {
            to.append_entry(&conversation.id, &entry)?;
            copied.entries += 1;
        }
        to.put_conversation(&conversation)?;
        copied.conversations += 1;
    }
    for approval in from.approvals()? {
        to.put_approval(&approval)?;
        copied.approvals += 1;
    }
    for grant in from.grants(None)? {
        to.put_grant(&grant)?;
        copied.grants += 1;
    }
    for record in from.audit()? {
        to.append_audit(&record)?;
        copied.audit += 1;
    }
    for space in from.kv_spaces()? {
        let records = from.kv_scan(&space, "")?;
        for chunk in records.chunks(BATCH) {
            let mut batch = super::KvBatch::new();
            for (key, value) in chunk {
                batch.put(&space, key, value.clone());
            }
            to.kv_write(&batch)?;
        }
        copied.records += records.len();
    }
    // Records keyed by ids of the old store (the outbox, the journal's order) must
    // never meet a new id that is equal.
    to.reserve_ids(from.next_id()?)?;
    verify(from, to)?;
    Ok(copied)
}

/// Reads both stores back and compares them; the first difference is an error.
fn verify(from: &dyn Store, to: &dyn Store) -> StoreResult<()> {
    let differ = |what: &str| Err(StoreError::Backend(format!("the copy differs from the original in its {what}")));
    if from.agents()? != to.agents()? {
        return differ("agents");
    }
    for agent in from.agents()? {
        if from.blocks(&agent.id)? != to.blocks(&agent.id)? {
            return differ("memory blocks");
        }
    }
    if from.conversations(None)? != to.conversations(None)? {
        return differ("conversations");
    }
    for conversation in from.conversations(None)? {
        let entries = |s: &dyn Store| -> StoreResult<Vec<super::Entry>> {
            Ok(s.entries(&conversation.id)?.into_iter().map(|(_, e)| e).collect())
        };
        if entries(from)? != entries(to)? {
            return differ("transcripts");
        }
    }
    if from.approvals()? != to.approvals()? || from.grants(None)? != to.grants(None)? || from.audit()? != to.audit()? {
        return differ("approvals, grants or audit log");
    }
    if from.kv_spaces()? != to.kv_spaces()? {
        return differ("key spaces");
    }
    for space in from.kv_spaces()? {
        if from.kv_scan(&space, "")? != to.kv_scan(&space, "")? {
            return differ(&format!("{space} records"));
        }
    }
    Ok(())
}
