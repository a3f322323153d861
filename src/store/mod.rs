//! Persistent state behind one trait: agents, memory blocks, conversations, transcript
//! entries and a little metadata. Every write is durable before its caller hears of
//! it: a call returns after its flush, or, for work handed to a store's own thread
//! ([`blocking`]), the work's answer waits for one; writes made at about the same
//! moment share one flush (group commit).

mod batch;
pub mod commit;
pub mod copy;
mod exclusive;
mod lease;
mod lock;
mod memory_history;
pub mod model;
mod policy_records;
pub mod postgres;
mod schema;
mod sled_store;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

pub use batch::{KvBatch, KvOp};
pub use exclusive::exclusively;
pub use lease::{Claim, Lease};
pub use memory_history::{edits as memory_edits, record_edit as record_memory_edit, MemoryEdit};
pub use model::*;
pub use policy_records::*;
pub use schema::{Migration, SCHEMA_VERSION};
pub use sled_store::{FlushHook, SledStore};
pub use sqlite::{ReadHook, SqliteStore, FILE as SQLITE_FILE, VERSION as SQLITE_SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {dir} is in use by another switchboard process{holder}; stop it or choose another data_dir"
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("the data directory {dir} is damaged or not a switchboard data directory ({detail}); restore it from a backup or move it aside")]
    Corrupt { dir: PathBuf, detail: String },
    #[error("the data directory {dir} was written by a newer switchboard (schema {found}; this build understands up to {supported})")]
    NewerSchema { dir: PathBuf, found: u32, supported: u32 },
    // `cause`, not `source`: the message already includes it, and a `source` would be
    // printed a second time by error-chain formatting.
    #[error("cannot use the data directory {dir}: {cause}")]
    Io { dir: PathBuf, cause: std::io::Error },
    #[error("storage error: {0}")]
    Backend(String),
    #[error(
        "cannot reach the PostgreSQL database {database}: {cause}; check store.postgres.url and that the server runs"
    )]
    Unreachable { database: String, cause: String },
    #[error("the PostgreSQL database {database} is in use by another switchboard process; stop it, give this one its own database, or run every process as a replica (store.postgres.replicas = true)")]
    DatabaseInUse { database: String },
    #[error("the PostgreSQL database {database} is held by a switchboard process that is not a replica; stop it, or set store.postgres.replicas = true on it too")]
    DatabaseHeldAlone { database: String },
    #[error("the PostgreSQL database {database} was set up by a newer switchboard (schema {found}; this build understands up to {supported})")]
    NewerDatabase { database: String, found: i32, supported: i32 },
    #[error("a stored {what} could not be read: {detail}")]
    Decode { what: &'static str, detail: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Storage for everything switchboard must remember. Implementations make each
/// write durable (flushed to disk) before returning, except inside a [`Job`] on
/// the store's own thread, whose answer is released after the flush instead.
pub trait Store: Send + Sync + 'static {
    fn put_agent(&self, agent: &AgentRecord) -> StoreResult<()>;
    fn agent(&self, id: &str) -> StoreResult<Option<AgentRecord>>;
    fn agents(&self) -> StoreResult<Vec<AgentRecord>>;
    /// Removes the agent with its memory blocks, conversations and transcripts.
    fn delete_agent(&self, id: &str) -> StoreResult<bool>;

    fn put_block(&self, agent_id: &str, block: &MemoryBlock) -> StoreResult<()>;
    fn blocks(&self, agent_id: &str) -> StoreResult<Vec<MemoryBlock>>;

    fn put_conversation(&self, conversation: &ConversationRecord) -> StoreResult<()>;
    fn conversation(&self, id: &str) -> StoreResult<Option<ConversationRecord>>;
    /// Conversations, of one agent or of all, oldest first.
    fn conversations(&self, agent_id: Option<&str>) -> StoreResult<Vec<ConversationRecord>>;

    /// Appends an entry to a conversation's transcript and returns its sequence number.
    fn append_entry(&self, conversation_id: &str, entry: &Entry) -> StoreResult<u64>;
    /// As [`Store::append_entry`], only while `lease` is still held with its
    /// fence, checked in the same atomic step; `None` when it is not (nothing is
    /// written): a replica that lost a conversation adds nothing to it.
    fn append_entry_fenced(&self, lease: &Lease, conversation_id: &str, entry: &Entry) -> StoreResult<Option<u64>>;
    /// The transcript in append order, each entry with its sequence number.
    fn entries(&self, conversation_id: &str) -> StoreResult<Vec<(u64, Entry)>>;
    /// The transcript newest first, read lazily: what needs only the recent end
    /// reads only that.
    fn entries_newest_first<'a>(
        &'a self,
        conversation_id: &str,
    ) -> Box<dyn Iterator<Item = StoreResult<(u64, Entry)>> + 'a>;
    /// Whether the conversation holds an entry with this id (a keyed lookup).
    fn has_entry(&self, conversation_id: &str, entry_id: &str) -> StoreResult<bool>;

    fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()>;
    fn approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>>;
    /// Forgets an approval record (a decided one past its retention).
    fn remove_approval(&self, id: &str) -> StoreResult<()>;
    /// Every approval, oldest first.
    fn approvals(&self) -> StoreResult<Vec<ApprovalRecord>>;

    fn put_grant(&self, grant: &Grant) -> StoreResult<()>;
    /// The grants of one chat, or of every chat.
    fn grants(&self, chat: Option<&str>) -> StoreResult<Vec<Grant>>;
    /// Removes the grant with this id; whether there was one.
    fn remove_grant(&self, id: &str) -> StoreResult<bool>;

    fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    /// The audit log, oldest first.
    fn audit(&self) -> StoreResult<Vec<AuditRecord>>;

    /// A generic durable keyspace for components with simple records (the gateway's
    /// journal, outbox, routes, pairing). `space` names an independent key space.
    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> StoreResult<()>;
    fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<Vec<u8>>>;
    fn kv_remove(&self, space: &str, key: &str) -> StoreResult<()>;
    /// Entries whose key starts with `prefix`, in key order.
    fn kv_scan(&self, space: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Applies every write of `batch` together, all or none, made durable by one
    /// flush (shared with whoever else commits at that moment).
    fn kv_write(&self, batch: &KvBatch) -> StoreResult<()>;
    /// As [`Store::kv_write`], only when `space` holds nothing under `key`, checked
    /// in the same atomic step; whether it was applied.
    fn kv_write_if_absent(&self, space: &str, key: &str, batch: &KvBatch) -> StoreResult<bool>;
    /// Claims the lease `name` for `holder` for `ttl`: granted when nobody holds
    /// it or its holder let it lapse (with a larger fence), or renewed when
    /// `holder` holds it already (same fence).
    fn lease_claim(&self, name: &str, holder: &str, ttl: std::time::Duration) -> StoreResult<Claim>;
    /// Extends a held lease by `ttl` from now; `None` when it lapsed or has
    /// another holder or fence now (it is lost: stop what it guards).
    fn lease_renew(&self, lease: &Lease, ttl: std::time::Duration) -> StoreResult<Option<Lease>>;
    /// Lets a held lease lapse at once, so another may claim it without waiting
    /// (its fence is kept, so the next holder's is larger).
    fn lease_release(&self, lease: &Lease) -> StoreResult<()>;
    /// As [`Store::kv_write`], only while `lease` is still held with its fence,
    /// checked in the same atomic step; whether it was applied. A holder that
    /// lost its lease can therefore never commit.
    fn kv_write_fenced(&self, lease: &Lease, batch: &KvBatch) -> StoreResult<bool>;
    /// [`Store::kv_write_fenced`] under `fence` when one is given (a replica's
    /// lease), else [`Store::kv_write`]; whether it was applied.
    fn kv_write_under(&self, fence: Option<&Lease>, batch: &KvBatch) -> StoreResult<bool> {
        match fence {
            Some(lease) => self.kv_write_fenced(lease, batch),
            None => self.kv_write(batch).map(|()| true),
        }
    }
    /// Whether other processes use this store at the same time (replicas), so
    /// that a read-modify-write must be made [`exclusively`]. Default: no.
    fn shared(&self) -> bool {
        false
    }
    /// Tells every process on this store, this one too, that there is work to
    /// look at (an event for a chat another replica holds, a lease let go of).
    /// Default: nothing to tell (a store one process owns).
    fn announce(&self) -> StoreResult<()> {
        Ok(())
    }
    /// A count that grows with the announcements heard (and after each
    /// reconnection of the listener, when some may have been missed); `None`
    /// when the store carries none (then look at a timer's pace only).
    fn announcements(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// Why this store refuses every write until it is opened again (a flush
    /// failed, and the kernel may have dropped what it could not write), if it
    /// does. Default: it never does.
    fn broken(&self) -> Option<String> {
        None
    }
    /// Whether a read is short and never waits for a write, its flush or the
    /// network, so that [`read`] may run it on the caller's (async) thread.
    /// Default: no (it goes where [`blocking`] sends work).
    fn reads_inline(&self) -> bool {
        false
    }
    /// Takes `job` to run on the store's own thread (which answers it once its
    /// writes are durable), or gives it back: then [`blocking`] runs it on the
    /// blocking pool, where each write waits for its own flush. Default: gives it
    /// back.
    fn submit(&self, job: Job) -> Result<(), Job> {
        Err(job)
    }
    /// The generic key spaces that hold something.
    fn kv_spaces(&self) -> StoreResult<Vec<String>>;
    /// A number larger than any returned before, across restarts.
    fn next_id(&self) -> StoreResult<u64>;
    /// Makes every later [`Store::next_id`] larger than `id` (after records that
    /// carry ids were copied in from another store).
    fn reserve_ids(&self, id: u64) -> StoreResult<()>;

    fn meta(&self, key: &str) -> StoreResult<Option<String>>;
    fn put_meta(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Every metadata key and value, in key order.
    fn metas(&self) -> StoreResult<Vec<(String, String)>>;
    fn schema_version(&self) -> StoreResult<u32>;
    /// How many records each part of the store holds and their bytes, largest
    /// first (reads everything: for `check`, not for the hot path).
    fn sizes(&self) -> StoreResult<Vec<TreeSize>>;
    /// Lets go of the store at the end of the process, so that the next one may
    /// take it at once (every acknowledged write is durable already). Calls after
    /// it fail.
    fn close(&self) -> StoreResult<()>;
}

/// One part of the store and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeSize {
    pub name: String,
    pub records: u64,
    /// Keys and values, uncompressed.
    pub bytes: u64,
}

/// `sizes` as lines for people: the largest `top` parts.
pub fn render_sizes(sizes: &[TreeSize], top: usize) -> String {
    let mut out = String::new();
    for size in sizes.iter().take(top) {
        out.push_str(&format!("  {:<28} {:>10} records {:>12}\n", size.name, size.records, human_bytes(size.bytes)));
    }
    out
}

/// `1.5 MiB`, `12.0 KiB`, `300 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Opens the store the settings name: SQLite or sled in `data_dir`, or the
/// PostgreSQL database (its schema brought up to date).
pub fn open(settings: &crate::config::Settings) -> StoreResult<Arc<dyn Store>> {
    use crate::config::StoreKind;
    Ok(match settings.store.kind {
        StoreKind::Sqlite => {
            if settings.data_dir.join("db").join("conf").exists() {
                tracing::warn!(
                    data_dir = %settings.data_dir.display(),
                    "the data directory holds a sled store too; the SQLite one is used (store.kind = \"sled\" uses the other)"
                );
            }
            Arc::new(SqliteStore::open(&settings.data_dir, settings.store.cache_mb)?)
        }
        StoreKind::Sled => Arc::new(SledStore::open_sized(&settings.data_dir, settings.store.cache_mb)?),
        StoreKind::Postgres => {
            // The data directory still holds the control socket and the agent's
            // workdir by default: the owner's only, as sled's is.
            let dir = &settings.data_dir;
            let io = |cause| StoreError::Io { dir: dir.clone(), cause };
            std::fs::create_dir_all(dir).map_err(io)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(io)?;
            Arc::new(postgres::PgStore::open(&settings.store.postgres)?)
        }
    })
}

/// For tests: a fresh store of one kind, and what keeps it alive.
#[cfg(test)]
pub struct TestBackend {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

/// For tests that must hold on every backend: a fresh SQLite and a fresh sled
/// store, each in a temporary directory, and a fresh database of the test run's
/// PostgreSQL server.
#[cfg(test)]
pub fn test_backends() -> Vec<TestBackend> {
    let sqlite_dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = Arc::new(SqliteStore::open(sqlite_dir.path(), 8).expect("a SQLite store"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sled = Arc::new(SledStore::open(dir.path()).expect("a sled store"));
    let url = switchboard_fakes::postgres::database();
    let pg = postgres::PgStore::open(&postgres::PgOptions { url, pool_size: 4, replicas: Default::default() })
        .expect("a PostgreSQL store");
    vec![
        TestBackend { name: "sqlite", store: sqlite, _dir: Some(sqlite_dir) },
        TestBackend { name: "sled", store: sled, _dir: Some(dir) },
        TestBackend { name: "postgres", store: Arc::new(pg), _dir: None },
    ]
}

/// Resolves once `store` refuses every write (see [`Store::broken`]), with why;
/// asks every `every`. A daemon whose store is broken can take in nothing more
/// (every event's journal write fails), so `serve` ends on it and its supervisor
/// starts it again: the reopened store recovers what was flushed, and the
/// journal replays what was not yet answered.
pub async fn broken(store: &Arc<dyn Store>, every: std::time::Duration) -> String {
    loop {
        if let Some(why) = store.broken() {
            return why;
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs store reads, and nothing else: on the caller's thread when the store's
/// reads are short and never wait for a write ([`Store::reads_inline`]), which
/// saves a hand-off to the blocking pool and back; otherwise as [`blocking`] does.
/// A write inside `work` is refused there (see [`reading_here`]): it would hold
/// an async thread for a flush.
pub async fn read<T, F>(store: &Arc<dyn Store>, work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    if !store.reads_inline() {
        return blocking(store, work).await;
    }
    let _reading = Reading::here();
    work(store.as_ref())
}

/// Runs long store reads (a whole table, a whole transcript) on the blocking
/// pool: not on an async thread, nor on the store's own thread, where they would
/// hold up every write behind them. Writes inside `work` are refused, as in [`read`].
pub async fn scan<T, F>(store: &Arc<dyn Store>, work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let _reading = Reading::here();
        work(store.as_ref())
    })
    .await
    .map_err(|e| StoreError::Backend(format!("store task failed: {}", crate::panics::task_failure(&e))))?
}

/// Marks this thread as running [`read`]'s (or [`scan`]'s) work until dropped (a
/// panic included); counted, so a read inside another keeps the outer one marked.
struct Reading;

impl Reading {
    fn here() -> Reading {
        READING.with(|reading| reading.set(reading.get() + 1));
        Reading
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        READING.with(|reading| reading.set(reading.get() - 1));
    }
}

thread_local! {
    /// How many [`read`]s (or [`scan`]s) this thread is running the work of.
    static READING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Fails when called inside [`read`]'s inline work: a store's write calls it
/// first, so a write slipped into a read is an error, not an async thread
/// blocked on a flush.
pub fn reading_here() -> StoreResult<()> {
    match READING.with(|reading| reading.get() > 0) {
        true => Err(StoreError::Backend("a write was made inside a read (store::read); use store::blocking".into())),
        false => Ok(()),
    }
}

/// Store work handed to a store's own thread ([`Store::submit`]): it runs the
/// work and answers what releases the work's answer, given whether the work's
/// writes were made durable.
pub type Job = Box<dyn FnOnce() -> Settle + Send>;

/// Releases a [`Job`]'s answer once its writes are durable (`Ok`) or could not
/// be made so (the error, which then is the answer).
pub type Settle = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Runs store work off the async runtime's worker threads (writes wait on
/// fsync): on the store's own thread if it has one ([`Store::submit`]), else on
/// the blocking pool. Its answer comes once every write it made is durable.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| StoreError::Backend(format!("store task failed: {e}"));
    let (answer, answered) = tokio::sync::oneshot::channel();
    let own = Arc::clone(store);
    let job: Job = Box::new(move || {
        let result = work(own.as_ref());
        Box::new(move |durable: StoreResult<()>| {
            let _ = answer.send(durable.and(result));
        })
    });
    if let Err(job) = store.submit(job) {
        // The store's writes wait for their own flushes here.
        tokio::task::spawn_blocking(move || job()(Ok(())))
            .await
            .map_err(|e| failed(&crate::panics::task_failure(&e)))?;
    }
    answered.await.map_err(|e| failed(&e))?
}
