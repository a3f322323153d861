//! The sled implementation of [`Store`]. Records are JSON values in named trees;
//! every write waits for a flush (shared by the writes of the same moment, see
//! [`super::commit`]) so an acknowledged write survives a crash.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::commit::Committer;
use super::lock::DirLock;
use super::schema::{self, Migration, MIGRATIONS, SCHEMA_VERSION, VERSION_KEY};
use super::{
    lease, now_ms, AgentRecord, ApprovalRecord, AuditRecord, Claim, ConversationRecord, Entry, Grant, KvBatch, KvOp,
    Lease, MemoryBlock, Store, StoreError, StoreResult, TreeSize,
};

/// Runs before each flush; an error fails the flush (and so every write it was
/// to make durable). For tests of what waits for durability.
pub type FlushHook = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

pub struct SledStore {
    db: sled::Db,
    agents: sled::Tree,
    blocks: sled::Tree,
    conversations: sled::Tree,
    entries: sled::Tree,
    /// Each entry's sequence number by its id, per conversation.
    entry_ids: sled::Tree,
    approvals: sled::Tree,
    grants: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    /// Lease name → `Lease` (JSON).
    leases: sled::Tree,
    committer: Committer,
    flush_hook: Mutex<Option<FlushHook>>,
    _lock: DirLock,
}

/// The page cache when none is configured, in MiB.
pub const DEFAULT_CACHE_MB: u64 = 64;

impl SledStore {
    /// Appends `entry`, while `lease` (when given) is still held.
    fn append_entry_if(&self, conversation_id: &str, entry: &Entry, lease: Option<&Lease>) -> StoreResult<Option<u64>> {
        use sled::transaction::ConflictableTransactionError;
        use sled::Transactional;
        // sled's ids only grow, across restarts too, so they order the transcript.
        let seq = self.db.generate_id().map_err(backend)?;
        let bytes = serde_json::to_vec(entry).map_err(|e| StoreError::Backend(e.to_string()))?;
        let conversation = match self.conversation(conversation_id)? {
            Some(mut c) => {
                c.updated_at = entry.msg.timestamp;
                Some(serde_json::to_vec(&c).map_err(|e| StoreError::Backend(e.to_string()))?)
            }
            None => None,
        };
        // The entry, its id's index and the conversation's time together, or
        // none; and only while the lease is held.
        // (The leases take part only when one is to be checked.)
        let mut trees = vec![self.entries.clone(), self.entry_ids.clone(), self.conversations.clone()];
        if lease.is_some() {
            trees.push(self.leases.clone());
        }
        let appended = self.durable(|| {
            trees[..]
                .transaction(|views| {
                    if let Some(lease) = lease {
                        let current = views[3].get(lease.name.as_bytes())?;
                        let current = current.and_then(|bytes| serde_json::from_slice::<Lease>(&bytes).ok());
                        if !current.is_some_and(|c| lease::still_held(&c, lease, now_ms())) {
                            return Ok(false);
                        }
                    }
                    views[0].insert(child_key(conversation_id, &seq.to_be_bytes()), bytes.as_slice())?;
                    views[1].insert(child_key(conversation_id, entry.id().as_bytes()), &seq.to_be_bytes())?;
                    if let Some(c) = &conversation {
                        views[2].insert(conversation_id.as_bytes(), c.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(true)
                })
                .map_err(|e| StoreError::Backend(format!("{e:?}")))
        })?;
        Ok(appended.then_some(seq))
    }

    /// Opens (creating if needed) the store in `dir`, upgrading an older schema.
    pub fn open(dir: &Path) -> StoreResult<SledStore> {
        Self::open_sized(dir, DEFAULT_CACHE_MB)
    }

    /// As [`SledStore::open`], with a page cache of `cache_mb` MiB: the bound on
    /// the pages kept in memory (sled keeps a little more per page it has read).
    pub fn open_sized(dir: &Path, cache_mb: u64) -> StoreResult<SledStore> {
        Self::open_full(dir, SCHEMA_VERSION, MIGRATIONS, cache_mb)
    }

    pub fn open_with(dir: &Path, target: u32, migrations: &[Migration]) -> StoreResult<SledStore> {
        Self::open_full(dir, target, migrations, DEFAULT_CACHE_MB)
    }

    fn open_full(dir: &Path, target: u32, migrations: &[Migration], cache_mb: u64) -> StoreResult<SledStore> {
        let io = |cause| StoreError::Io { dir: dir.to_path_buf(), cause };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = DirLock::acquire(dir)?;
        let db = open_db(&dir.join("db"), dir, cache_mb)?;
        schema::upgrade(&db, dir, target, migrations)?;
        owner_only(dir).map_err(io)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| corrupt_or_backend(e, dir));
        Ok(SledStore {
            agents: tree("agents")?,
            blocks: tree("blocks")?,
            conversations: tree("conversations")?,
            entries: tree("entries")?,
            entry_ids: tree("entry_ids")?,
            approvals: tree("approvals")?,
            grants: tree("grants")?,
            audit: tree("audit")?,
            meta: tree("meta")?,
            leases: tree("leases")?,
            committer: Committer::new(),
            flush_hook: Mutex::new(None),
            db,
            _lock: lock,
        })
    }

    /// A generic key space lives in its own tree, prefixed so it cannot collide with ours.
    fn space(&self, name: &str) -> StoreResult<sled::Tree> {
        self.db.open_tree(format!("kv:{name}")).map_err(backend)
    }

    /// Sets (or clears) a hook that runs before every flush (for tests).
    pub fn before_flush(&self, hook: Option<FlushHook>) {
        *self.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// Returns once a flush that began after this call made every earlier write
    /// durable; writers waiting at the same moment share it.
    fn commit(&self) -> StoreResult<()> {
        let flush = || {
            if let Some(hook) = &*self.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) {
                hook()?;
            }
            let began = std::time::Instant::now();
            let flushed = self.db.flush().map(|_| ()).map_err(|e| e.to_string());
            crate::metrics::global().flushed(began.elapsed());
            flushed
        };
        let served = |served: super::commit::Served| crate::metrics::global().commit_group(served.writers);
        self.committer.commit(flush, served).map_err(StoreError::Backend)
    }

    /// Runs `write`, then waits for its flush: one durable write, timed for the metrics.
    fn durable<T>(&self, write: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        let began = std::time::Instant::now();
        let written = write()?;
        self.commit()?;
        crate::metrics::global().store_write(began.elapsed());
        Ok(written)
    }

    /// Applies `batch` atomically when `condition` holds, checked in the same
    /// step; whether it applied. Not yet durable.
    fn apply(&self, batch: &KvBatch, condition: Condition<'_>) -> StoreResult<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let mut names = batch.spaces();
        if let Condition::Absent(space, _) = condition {
            if !names.contains(&space) {
                names.insert(0, space);
            }
        }
        let mut trees = names.iter().map(|name| self.space(name)).collect::<StoreResult<Vec<_>>>()?;
        let index = |space: &str| names.iter().position(|n| *n == space).expect("every space is opened");
        // The leases, when the condition is one, come last.
        if let Condition::Leased(_) = condition {
            trees.push(self.leases.clone());
        }
        if matches!(condition, Condition::Always) && trees.len() == 1 {
            // One tree: its own atomic batch, cheaper than a transaction.
            let mut writes = sled::Batch::default();
            for op in batch.ops() {
                match op {
                    KvOp::Put { key, value, .. } => writes.insert(key.as_bytes(), value.as_slice()),
                    KvOp::Remove { key, .. } => writes.remove(key.as_bytes()),
                }
            }
            trees[0].apply_batch(writes).map_err(backend)?;
            return Ok(true);
        }
        let applied = trees[..].transaction(|views| {
            match condition {
                Condition::Always => {}
                Condition::Absent(space, key) => {
                    if views[index(space)].get(key)?.is_some() {
                        return Ok(false);
                    }
                }
                Condition::Leased(lease) => {
                    // (An unreadable lease is no lease held: nothing is written.)
                    let current = views[views.len() - 1].get(lease.name.as_bytes())?;
                    let current = current.and_then(|bytes| serde_json::from_slice::<Lease>(&bytes).ok());
                    if !current.is_some_and(|c| lease::still_held(&c, lease, now_ms())) {
                        return Ok(false);
                    }
                }
            }
            for op in batch.ops() {
                match op {
                    KvOp::Put { space, key, value } => {
                        views[index(space)].insert(key.as_bytes(), value.as_slice())?;
                    }
                    KvOp::Remove { space, key } => {
                        views[index(space)].remove(key.as_bytes())?;
                    }
                }
            }
            Ok::<_, ConflictableTransactionError<()>>(true)
        });
        match applied {
            Ok(applied) => Ok(applied),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
            Err(TransactionError::Abort(())) => Err(StoreError::Backend("a store transaction was aborted".into())),
        }
    }

    /// Runs `change` on the stored lease `name` (`None`: never held) in one
    /// atomic step; what it returns. A lease it wrote is durable by then (an
    /// answer that wrote nothing waits for no flush).
    fn with_lease<T>(&self, name: &str, change: impl Fn(Option<Lease>, u64) -> (Option<Lease>, T)) -> StoreResult<T> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let began = std::time::Instant::now();
        let changed = self.leases.transaction(|tree| {
            let current = match tree.get(name.as_bytes())? {
                // Unreadable is an error, never "never held": that would restart its fence.
                Some(bytes) => Some(
                    serde_json::from_slice::<Lease>(&bytes)
                        .map_err(|e| ConflictableTransactionError::Abort(format!("a stored lease: {e}")))?,
                ),
                None => None,
            };
            let (write, answer) = change(current, now_ms());
            let wrote = write.is_some();
            if let Some(lease) = write {
                let bytes = serde_json::to_vec(&lease).unwrap_or_default();
                tree.insert(name.as_bytes(), bytes)?;
            }
            Ok((answer, wrote))
        });
        let (answer, wrote) = match changed {
            Ok(changed) => changed,
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
            Err(TransactionError::Abort(detail)) => return Err(StoreError::Decode { what: "lease", detail }),
        };
        if wrote {
            self.commit()?;
            crate::metrics::global().store_write(began.elapsed());
        }
        Ok(answer)
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], value: &T) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.durable(|| tree.insert(key, bytes).map(|_| ()).map_err(backend))
    }
}

/// What must hold for a batch to apply.
#[derive(Clone, Copy)]
enum Condition<'a> {
    Always,
    /// The key (space, key) holds nothing.
    Absent(&'a str, &'a str),
    /// The lease is still held by its holder with its fence.
    Leased(&'a Lease),
}

/// The data directory and everything in it readable by its owner only (0700 for
/// directories, 0600 for files), whatever the umask was when they were made.
pub(super) fn owner_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in walkdir::WalkDir::new(dir).min_depth(1).into_iter().filter_map(Result::ok) {
        let mode = if entry.file_type().is_dir() { 0o700 } else { 0o600 };
        if !entry.file_type().is_symlink() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// sled may panic rather than return an error on some damaged files; either way the
/// caller gets `Corrupt`.
fn open_db(path: &Path, dir: &Path, cache_mb: u64) -> StoreResult<sled::Db> {
    let config = sled::Config::new().path(path).cache_capacity(cache_mb * 1024 * 1024);
    // A store just closed in this process may still be letting go of its file
    // lock (sled's flusher thread ends a moment after the last handle): wait for
    // it a little rather than fail. Our own directory lock already keeps other
    // processes out.
    let mut attempt = std::panic::catch_unwind(AssertUnwindSafe(|| config.open()));
    for _ in 0..LOCK_RETRIES {
        match &attempt {
            Ok(Err(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
                attempt = std::panic::catch_unwind(AssertUnwindSafe(|| config.open()));
            }
            _ => break,
        }
    }
    match attempt {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(corrupt_or_backend(e, dir)),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the storage engine failed while reading it".into());
            Err(StoreError::Corrupt { dir: dir.to_path_buf(), detail })
        }
    }
}

/// How many times (50 ms apart) opening waits for a just-closed store's file lock.
const LOCK_RETRIES: usize = 40;

fn corrupt_or_backend(e: sled::Error, dir: &Path) -> StoreError {
    match e {
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => {
            StoreError::Corrupt { dir: dir.to_path_buf(), detail: e.to_string() }
        }
        sled::Error::Io(cause) => StoreError::Io { dir: dir.to_path_buf(), cause },
        other => StoreError::Backend(other.to_string()),
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode { what, detail: e.to_string() })
}

/// `owner \0` — the prefix under which an owner's children are keyed.
fn prefix(owner: &str) -> Vec<u8> {
    let mut key = owner.as_bytes().to_vec();
    key.push(0);
    key
}

fn child_key(owner: &str, child: &[u8]) -> Vec<u8> {
    let mut key = prefix(owner);
    key.extend_from_slice(child);
    key
}

fn values<T: DeserializeOwned>(what: &'static str, iter: sled::Iter) -> StoreResult<Vec<T>> {
    iter.map(|item| {
        let (_, v) = item.map_err(backend)?;
        decode(what, &v)
    })
    .collect()
}

impl Store for SledStore {
    fn put_agent(&self, agent: &AgentRecord) -> StoreResult<()> {
        self.put(&self.agents, agent.id.as_bytes(), agent)
    }

    fn agent(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        self.agents.get(id).map_err(backend)?.map(|v| decode("agent", &v)).transpose()
    }

    fn agents(&self) -> StoreResult<Vec<AgentRecord>> {
        let mut all: Vec<AgentRecord> = values("agent", self.agents.iter())?;
        all.sort_by_key(|a| a.created_at);
        Ok(all)
    }

    fn delete_agent(&self, id: &str) -> StoreResult<bool> {
        if self.agents.remove(id).map_err(backend)?.is_none() {
            return Ok(false);
        }
        for item in self.blocks.scan_prefix(prefix(id)) {
            self.blocks.remove(item.map_err(backend)?.0).map_err(backend)?;
        }
        for conversation in self.conversations(Some(id))? {
            for tree in [&self.entries, &self.entry_ids] {
                for item in tree.scan_prefix(prefix(&conversation.id)) {
                    tree.remove(item.map_err(backend)?.0).map_err(backend)?;
                }
            }
            self.conversations.remove(conversation.id.as_bytes()).map_err(backend)?;
        }
        self.commit()?;
        Ok(true)
    }

    fn put_block(&self, agent_id: &str, block: &MemoryBlock) -> StoreResult<()> {
        self.put(&self.blocks, &child_key(agent_id, block.label.as_bytes()), block)
    }

    fn blocks(&self, agent_id: &str) -> StoreResult<Vec<MemoryBlock>> {
        values("memory block", self.blocks.scan_prefix(prefix(agent_id)))
    }

    fn put_conversation(&self, conversation: &ConversationRecord) -> StoreResult<()> {
        self.put(&self.conversations, conversation.id.as_bytes(), conversation)
    }

    fn conversation(&self, id: &str) -> StoreResult<Option<ConversationRecord>> {
        self.conversations.get(id).map_err(backend)?.map(|v| decode("conversation", &v)).transpose()
    }

    fn conversations(&self, agent_id: Option<&str>) -> StoreResult<Vec<ConversationRecord>> {
        let mut all: Vec<ConversationRecord> = values("conversation", self.conversations.iter())?;
        all.retain(|c| agent_id.is_none_or(|a| c.agent_id == a));
        all.sort_by_key(|c| c.created_at);
        Ok(all)
    }

    fn append_entry(&self, conversation_id: &str, entry: &Entry) -> StoreResult<u64> {
        Ok(self.append_entry_if(conversation_id, entry, None)?.expect("no lease to lose"))
    }

    fn append_entry_fenced(&self, lease: &Lease, conversation_id: &str, entry: &Entry) -> StoreResult<Option<u64>> {
        self.append_entry_if(conversation_id, entry, Some(lease))
    }

    fn entries(&self, conversation_id: &str) -> StoreResult<Vec<(u64, Entry)>> {
        self.entries_newest_first(conversation_id).collect::<StoreResult<Vec<_>>>().map(|mut all| {
            all.reverse();
            all
        })
    }

    fn entries_newest_first<'a>(
        &'a self,
        conversation_id: &str,
    ) -> Box<dyn Iterator<Item = StoreResult<(u64, Entry)>> + 'a> {
        let start = prefix(conversation_id).len();
        Box::new(self.entries.scan_prefix(prefix(conversation_id)).rev().map(move |item| {
            let (k, v) = item.map_err(backend)?;
            let seq_bytes: [u8; 8] = k[start..]
                .try_into()
                .map_err(|_| StoreError::Decode { what: "entry key", detail: "bad length".into() })?;
            Ok((u64::from_be_bytes(seq_bytes), decode("transcript entry", &v)?))
        }))
    }

    fn has_entry(&self, conversation_id: &str, entry_id: &str) -> StoreResult<bool> {
        self.entry_ids.contains_key(child_key(conversation_id, entry_id.as_bytes())).map_err(backend)
    }

    fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        self.put(&self.approvals, approval.id.as_bytes(), approval)
    }

    fn approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        self.approvals.get(id).map_err(backend)?.map(|v| decode("approval", &v)).transpose()
    }

    fn remove_approval(&self, id: &str) -> StoreResult<()> {
        self.durable(|| self.approvals.remove(id).map(|_| ()).map_err(backend))
    }

    fn approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        let mut all: Vec<ApprovalRecord> = values("approval", self.approvals.iter())?;
        all.sort_by_key(|a| a.created_at);
        Ok(all)
    }

    fn put_grant(&self, grant: &Grant) -> StoreResult<()> {
        let key = child_key(&grant.chat, grant.id.as_bytes());
        self.put(&self.grants, &key, grant)
    }

    fn grants(&self, chat: Option<&str>) -> StoreResult<Vec<Grant>> {
        match chat {
            Some(chat) => values("grant", self.grants.scan_prefix(prefix(chat))),
            None => values("grant", self.grants.iter()),
        }
    }

    fn remove_grant(&self, id: &str) -> StoreResult<bool> {
        for item in self.grants.iter() {
            let (key, value) = item.map_err(backend)?;
            if decode::<Grant>("grant", &value)?.id == id {
                self.grants.remove(key).map_err(backend)?;
                self.commit()?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let seq = self.db.generate_id().map_err(backend)?;
        self.put(&self.audit, &seq.to_be_bytes(), record)
    }

    fn audit(&self) -> StoreResult<Vec<AuditRecord>> {
        values("audit record", self.audit.iter())
    }

    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        let tree = self.space(space)?;
        self.durable(|| tree.insert(key, value).map(|_| ()).map_err(backend))
    }

    fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.space(space)?.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn kv_remove(&self, space: &str, key: &str) -> StoreResult<()> {
        let tree = self.space(space)?;
        self.durable(|| tree.remove(key).map(|_| ()).map_err(backend))
    }

    fn kv_scan(&self, space: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.space(space)?
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn kv_write(&self, batch: &KvBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.durable(|| self.apply(batch, Condition::Always).map(|_| ()))
    }

    fn kv_write_if_absent(&self, space: &str, key: &str, batch: &KvBatch) -> StoreResult<bool> {
        // Waits for a flush either way: what was found may be another writer's,
        // not yet durable, and the caller may acknowledge it as stored.
        self.durable(|| self.apply(batch, Condition::Absent(space, key)))
    }

    fn kv_write_fenced(&self, lease: &Lease, batch: &KvBatch) -> StoreResult<bool> {
        self.durable(|| self.apply(batch, Condition::Leased(lease)))
    }

    fn lease_claim(&self, name: &str, holder: &str, ttl: std::time::Duration) -> StoreResult<Claim> {
        self.with_lease(name, |current, now| lease::claim(current, name, holder, lease::ttl_ms(ttl), now))
    }

    fn lease_renew(&self, lease: &Lease, ttl: std::time::Duration) -> StoreResult<Option<Lease>> {
        self.with_lease(&lease.name, |current, now| lease::renew(current, lease, lease::ttl_ms(ttl), now))
    }

    fn lease_release(&self, lease: &Lease) -> StoreResult<()> {
        self.with_lease(&lease.name, |current, now| (lease::release(current, lease, now), ()))
    }

    fn kv_spaces(&self) -> StoreResult<Vec<String>> {
        let mut spaces = Vec::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            if let Some(space) = name.strip_prefix("kv:") {
                if !self.db.open_tree(&name).map_err(backend)?.is_empty() {
                    spaces.push(space.to_string());
                }
            }
        }
        spaces.sort();
        Ok(spaces)
    }

    fn next_id(&self) -> StoreResult<u64> {
        self.db.generate_id().map_err(backend)
    }

    fn reserve_ids(&self, id: u64) -> StoreResult<()> {
        // sled's ids only grow by one: take them until past `id` (a few million
        // at most for a copied store: sled skips about two million at each start).
        while self.db.generate_id().map_err(backend)? <= id {}
        self.commit()
    }

    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self.meta.get(key).map_err(backend)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn put_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.durable(|| self.meta.insert(key, value.as_bytes()).map(|_| ()).map_err(backend))
    }

    fn metas(&self) -> StoreResult<Vec<(String, String)>> {
        self.meta
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            })
            .collect()
    }

    fn schema_version(&self) -> StoreResult<u32> {
        let raw = self.meta.get(VERSION_KEY).map_err(backend)?;
        Ok(raw.as_deref().and_then(schema::parse_version).unwrap_or(0))
    }

    fn close(&self) -> StoreResult<()> {
        // The directory lock goes with the process; every write is flushed.
        Ok(())
    }

    fn sizes(&self) -> StoreResult<Vec<TreeSize>> {
        let mut sizes = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name).map_err(backend)?;
            let (mut records, mut bytes) = (0u64, 0u64);
            for item in tree.iter() {
                let (k, v) = item.map_err(backend)?;
                records += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            let name = String::from_utf8_lossy(&name).into_owned();
            // sled's own default tree holds nothing of ours.
            if records > 0 || name != "__sled__default" {
                sizes.push(TreeSize { name, records, bytes });
            }
        }
        sizes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{text_content, MessageBody};

    fn agent(id: &str, at: u64) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            name: "a".into(),
            model: None,
            system_prompt: crate::store::SystemPrompt::from_setting("default", ""),
            default_conversation: format!("conv-of-{id}"),
            created_at: at,
        }
    }

    fn conversation(id: &str, agent_id: &str) -> ConversationRecord {
        ConversationRecord { id: id.into(), agent_id: agent_id.into(), created_at: 1, updated_at: 1 }
    }

    #[test]
    fn round_trips_every_record_kind() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.put_agent(&agent("agent-1", 2)).unwrap();
            s.put_agent(&agent("agent-0", 1)).unwrap();
            s.put_block("agent-1", &MemoryBlock::new("human", "likes tea", "about the human")).unwrap();
            s.put_conversation(&conversation("conv-1", "agent-1")).unwrap();
            let e1 = Entry::new(None, MessageBody::User { content: text_content("hello") });
            let e2 = Entry::new(Some(e1.id().into()), MessageBody::User { content: text_content("again") });
            let a = s.append_entry("conv-1", &e1).unwrap();
            let b = s.append_entry("conv-1", &e2).unwrap();
            assert!(b > a);
            s.put_meta("default_agent", "agent-1").unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        let ids: Vec<String> = s.agents().unwrap().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["agent-0", "agent-1"]);
        assert_eq!(s.agent("agent-1").unwrap().unwrap(), agent("agent-1", 2));
        assert_eq!(s.blocks("agent-1").unwrap()[0].value, "likes tea");
        assert!(s.blocks("agent-0").unwrap().is_empty());
        let entries = s.entries("conv-1").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].1.parent_id.as_deref(), Some(entries[0].1.id()));
        assert!(s.conversation("conv-1").unwrap().unwrap().updated_at > 1);
        assert_eq!(s.meta("default_agent").unwrap().as_deref(), Some("agent-1"));
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn deleting_an_agent_removes_what_belongs_to_it_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        for id in ["agent-1", "agent-2"] {
            s.put_agent(&agent(id, 1)).unwrap();
            s.put_block(id, &MemoryBlock::new("persona", "p", "")).unwrap();
            s.put_conversation(&conversation(&format!("conv-{id}"), id)).unwrap();
            s.append_entry(&format!("conv-{id}"), &Entry::new(None, MessageBody::User { content: text_content("x") }))
                .unwrap();
        }
        assert!(s.delete_agent("agent-1").unwrap());
        assert!(!s.delete_agent("agent-1").unwrap());
        assert!(s.agent("agent-1").unwrap().is_none());
        assert!(s.blocks("agent-1").unwrap().is_empty());
        assert!(s.entries("conv-agent-1").unwrap().is_empty());
        assert_eq!(s.conversations(None).unwrap().len(), 1);
        assert_eq!(s.entries("conv-agent-2").unwrap().len(), 1);
    }

    #[test]
    fn key_spaces_are_independent_ordered_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.kv_put("journal", "b", b"2").unwrap();
            s.kv_put("journal", "a", b"1").unwrap();
            s.kv_put("outbox", "a", b"other").unwrap();
            s.kv_put("journal", "c", b"3").unwrap();
            s.kv_remove("journal", "c").unwrap();
            assert!(s.next_id().unwrap() < s.next_id().unwrap());
        }
        let s = SledStore::open(dir.path()).unwrap();
        let keys: Vec<String> = s.kv_scan("journal", "").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(s.kv_get("outbox", "a").unwrap().as_deref(), Some(&b"other"[..]));
        assert_eq!(s.kv_get("journal", "zzz").unwrap(), None);
    }

    #[test]
    fn a_batch_spans_key_spaces_and_applies_whole() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.kv_put("outbox", "old", b"x").unwrap();
            let mut batch = KvBatch::new();
            batch.put("journal", "e1", b"1".to_vec()).put("outbox", "new", b"2".to_vec()).remove("outbox", "old");
            s.kv_write(&batch).unwrap();
            // Only when absent: present, so nothing of the batch is written.
            let mut again = KvBatch::new();
            again.put("journal", "e1", b"changed".to_vec()).put("order", "9", b"e1".to_vec());
            assert!(!s.kv_write_if_absent("journal", "e1", &again).unwrap());
            let mut fresh = KvBatch::new();
            fresh.put("journal", "e2", b"2".to_vec()).put("order", "10", b"e2".to_vec());
            assert!(s.kv_write_if_absent("journal", "e2", &fresh).unwrap());
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.kv_get("journal", "e1").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.kv_get("outbox", "new").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.kv_get("outbox", "old").unwrap(), None);
        let order: Vec<String> = s.kv_scan("order", "").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(order, ["10"]);
        assert_eq!(s.kv_get("journal", "e2").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn a_write_fails_when_its_flush_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.before_flush(Some(Box::new(|| Err("injected".into()))));
        let err = s.kv_put("journal", "a", b"1").expect_err("an unflushed write is no success");
        assert!(err.to_string().contains("injected"), "{err}");
        let mut batch = KvBatch::new();
        batch.put("journal", "b", b"2".to_vec());
        assert!(s.kv_write(&batch).is_err());
        s.before_flush(None);
        s.kv_put("journal", "c", b"3").unwrap();
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        let err = SledStore::open(dir.path()).err().expect("second open must fail");
        let text = err.to_string();
        assert!(text.contains("in use by another switchboard process"), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
    }

    #[test]
    fn the_data_directory_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = SledStore::open(&data).unwrap();
        s.put_meta("x", "y").unwrap();
        drop(s);
        let _s = SledStore::open(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for entry in walkdir::WalkDir::new(&data).min_depth(1) {
            let entry = entry.unwrap();
            let want = if entry.file_type().is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(entry.path()), want, "{}", entry.path().display());
        }
    }

    #[test]
    fn a_newer_schema_is_refused_and_an_older_one_migrated() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open_with(dir.path(), 1, &[]).unwrap());
        let err = SledStore::open_with(dir.path(), 0, &[]).err().expect("newer schema must be refused");
        assert!(matches!(err, StoreError::NewerSchema { found: 1, supported: 0, .. }), "{err}");

        fn add_marker(db: &sled::Db) -> StoreResult<()> {
            db.open_tree("meta").unwrap().insert("migrated", "yes").unwrap();
            Ok(())
        }
        let migrations = [Migration { from: 1, run: add_marker }];
        let s = SledStore::open_with(dir.path(), 2, &migrations).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        assert_eq!(s.meta("migrated").unwrap().as_deref(), Some("yes"));
        drop(s);
        // Already at 2: the migration does not run again, and 1 is now "newer" than nothing.
        let s = SledStore::open_with(dir.path(), 2, &[]).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        drop(s);

        // The real 1 -> 2 step forgets the broad grants of schema 1.
        let old = tempfile::tempdir().unwrap();
        let s = SledStore::open_with(old.path(), 1, &[]).unwrap();
        s.grants.insert(b"telegram:1\0Write\0", br#"{"chat":"telegram:1","tool":"Write"}"#.to_vec()).unwrap();
        drop(s);
        let s = SledStore::open(old.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert!(s.grants(None).unwrap().is_empty());
        drop(s);

        // The 2 -> 3 step indexes the entries a schema-2 store wrote without one.
        let old = tempfile::tempdir().unwrap();
        let s = SledStore::open_with(old.path(), 2, &[]).unwrap();
        let entry = Entry::new(None, crate::store::MessageBody::User { content: crate::store::text_content("hi") });
        s.append_entry("conv-1", &entry).unwrap();
        s.entry_ids.clear().unwrap();
        assert!(!s.has_entry("conv-1", entry.id()).unwrap());
        drop(s);
        let s = SledStore::open(old.path()).unwrap();
        assert!(s.has_entry("conv-1", entry.id()).unwrap(), "indexed by the migration");
        assert!(!s.has_entry("conv-2", entry.id()).unwrap(), "per conversation");
    }

    #[test]
    fn a_corrupt_directory_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let db_dir = dir.path().join("db");
        for entry in std::fs::read_dir(&db_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::write(&path, vec![0xA5u8; 4096]).unwrap();
            }
        }
        let err = SledStore::open(dir.path()).err().expect("corrupt store must not open");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }
}
