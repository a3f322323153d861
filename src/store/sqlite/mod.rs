//! The SQLite implementation of [`Store`](super::Store), the default for one
//! machine: the same records as the other stores (JSON values) in tables of one
//! file in `data_dir`, with memory bounded by its page cache (`store.cache_mb`).
//!
//! Durability is group commit, as in [`super::commit`]: writes go into one open
//! SQLite transaction (see [`Core::stage`] for what a failed write leaves); a
//! flush commits that transaction to the write-ahead log
//! (`synchronous = NORMAL`, so without waiting for the disk) and then syncs the
//! log file (`fdatasync`), once for every writer waiting at that moment. No writer
//! is answered before a flush that began after its write. Checkpoints
//! ([`checkpoint`], on a thread and connection of their own) sync the log
//! before they copy it into the database file, so a flushed commit survives a
//! crash of the process or the machine.
//!
//! One connection writes (SQLite writes one transaction at a time anyway), held
//! for the statements and the commit, never during the sync, and during a
//! checkpoint only when the checkpointer falls far behind; reads run beside it
//! on connections of their own ([`readers`]), seeing the last commit. Store
//! work handed over by async callers ([`crate::store::blocking`]) runs on the
//! store's own thread ([`worker`]), back to back, and its answers wait for one
//! flush together. The page cache (`store.cache_mb`) is shared: half the
//! writer's, half the readers'.
//!
//! A flush that fails ends the store's writes until a restart: the kernel may
//! have dropped the pages it could not write, so a later flush proves nothing
//! about them. So does a write whose failure took the open transaction with it
//! (SQLite rolls back the whole transaction on some errors, such as a full disk):
//! other writers' changes went with it before anyone was answered. And so does a
//! write that fails (or panics) after one of its statements changed something:
//! nothing can take back that part alone, and a half-kept write must never be
//! committed.

mod checkpoint;
mod readers;
mod records;
mod worker;

use std::cell::Cell;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::commit::Committer;
use super::lock::DirLock;
use super::{FlushHook, StoreError, StoreResult};

/// The database file in `data_dir`.
pub const FILE: &str = "store.sqlite3";

/// The schema, one script per version; version `n` is `MIGRATIONS[n - 1]`.
/// Text keys compare as bytes (SQLite's BINARY collation), as sled's keys do.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE agents (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE blocks (agent_id TEXT NOT NULL, label TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (agent_id, label)) WITHOUT ROWID;
CREATE TABLE conversations (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    body BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX conversations_by_agent ON conversations (agent_id);
CREATE TABLE entries (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, entry_id TEXT NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE INDEX entries_by_id ON entries (conversation_id, entry_id);
CREATE TABLE approvals (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE grants (chat TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (chat, id)) WITHOUT ROWID;
CREATE INDEX grants_by_id ON grants (id);
CREATE TABLE audit (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE kv (space TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (space, key)) WITHOUT ROWID;
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, fence INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE ids (one INTEGER PRIMARY KEY CHECK (one = 1), last INTEGER NOT NULL);
INSERT INTO ids (one, last) VALUES (1, 0);
"#];

/// How many prepared statements the connection keeps (more than the store uses).
const STATEMENTS_KEPT: usize = 128;

/// Runs on the reader's own thread before a record is read by its space and key
/// ([`super::Store::kv_get`]): a test's way to hold a reader where it stands.
pub type ReadHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Why every write fails after a failed flush (or a lost transaction).
const BROKEN: &str = "an earlier write could not be made durable; restart switchboard";

/// The schema version this build sets up.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// The store in `data_dir/store.sqlite3`, one process at a time (the data
/// directory's lock).
pub struct SqliteStore {
    core: Arc<Core>,
    /// Work for the store's own thread; `None` once it is closing.
    jobs: Option<mpsc::Sender<super::Job>>,
    /// The store's own threads, ended and joined when the store is dropped.
    worker: Option<worker::Threads>,
}

/// What the store's callers and its own threads share.
struct Core {
    /// Closed before the writer's: the last connection to close folds the log
    /// into the file and removes it, which a reading one cannot.
    readers: readers::Readers,
    /// Copies the log into the file; ended before the writer's connection
    /// closes, for the same reason.
    checkpoints: checkpoint::Checkpointer,
    /// The writer's connection, and what it holds uncommitted.
    conn: Mutex<Writer>,
    /// The write-ahead log, opened for flushing it.
    wal: File,
    dir: PathBuf,
    committer: Committer,
    flush_hook: Mutex<Option<FlushHook>>,
    /// Whether `read_hook` is set (checked without its lock on every read).
    read_hooked: AtomicBool,
    read_hook: Mutex<Option<ReadHook>>,
    /// Set when a flush failed: no write is acknowledged after it.
    broken: AtomicBool,
    /// Released last, once the connections are closed.
    _lock: DirLock,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` with a page cache of
    /// `cache_mb` MiB (the bound on the data it keeps in memory), bringing its
    /// schema up to date.
    pub fn open(dir: &Path, cache_mb: u64) -> StoreResult<SqliteStore> {
        let io = |cause| StoreError::Io { dir: dir.to_path_buf(), cause };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = DirLock::acquire(dir)?;
        let path = dir.join(FILE);
        let corrupt = |e: rusqlite::Error| corrupt_or_backend(e, dir);
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(corrupt)?;
        // One process (the directory's lock), several connections: the log's
        // index is shared through the `-shm` file. A negative cache size is in KiB.
        let cache_kib = cache_mb.max(1) * 1024;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY;",
            cache_kib / 2
        ))
        .map_err(corrupt)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(corrupt)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("the store could not use a write-ahead log (mode {mode})")));
        }
        migrate(&conn, dir)?;
        let last_id = conn.query_row("SELECT last FROM ids WHERE one = 1", [], |row| row.get::<_, i64>(0));
        let last_id = last_id.map_err(corrupt)?.max(0) as u64;
        // Every statement stays prepared: the store has about fifty, and the
        // default cache of sixteen would parse most of them again on each use.
        conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
        // The log exists once something was written (the schema, or this).
        conn.execute_batch("BEGIN IMMEDIATE; UPDATE ids SET last = last WHERE one = 1; COMMIT;").map_err(corrupt)?;
        let wal = File::open(dir.join(format!("{FILE}-wal"))).map_err(io)?;
        // The checkpointer's connection: synced as the writer's (the log before
        // it is copied, the file once all of it is), with little cache (it
        // copies pages, and reads none of its own).
        let copier =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .and_then(|c| c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -256;").map(|()| c))
                .map_err(corrupt)?;
        let checkpoints = checkpoint::Checkpointer::start(copier).map_err(io)?;
        checkpoint::watch(&mut conn, checkpoints.pages()).map_err(corrupt)?;
        super::sled_store::owner_only(dir).map_err(io)?;
        // The files' names are durable too (SQLite syncs the directory only at
        // its first checkpoint).
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        let core = Arc::new(Core {
            conn: Mutex::new(Writer { conn, staged: false, last_id: Cell::new(last_id), stored_id: last_id }),
            readers: readers::Readers::new(path, cache_kib / 2, STATEMENTS_KEPT),
            checkpoints,
            wal,
            dir: dir.to_path_buf(),
            committer: Committer::new(),
            flush_hook: Mutex::new(None),
            read_hooked: AtomicBool::new(false),
            read_hook: Mutex::new(None),
            broken: AtomicBool::new(false),
            _lock: lock,
        });
        let (jobs, worker) = worker::start(&core).map_err(io)?;
        Ok(SqliteStore { core, jobs: Some(jobs), worker: Some(worker) })
    }

    /// Sets (or clears) a hook that runs before every flush (for tests).
    pub fn before_flush(&self, hook: Option<FlushHook>) {
        *self.core.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// Sets (or clears) a hook that runs before every read of a record by its
    /// space and key (for tests).
    pub fn before_read(&self, hook: Option<ReadHook>) {
        let mut set = self.core.read_hook.lock().unwrap_or_else(PoisonError::into_inner);
        self.core.read_hooked.store(hook.is_some(), Ordering::SeqCst);
        *set = hook;
    }

    /// Runs the read hook, if one is set (outside its lock: it may block).
    fn reading(&self, space: &str, key: &str) {
        if !self.core.read_hooked.load(Ordering::Relaxed) {
            return;
        }
        let hook = self.core.read_hook.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(hook) = hook {
            hook(space, key);
        }
    }

    /// Hands `job` to the store's own thread; gives it back once the store is closing.
    fn submit(&self, job: super::Job) -> Result<(), super::Job> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|refused| refused.0),
            None => Err(job),
        }
    }

    #[cfg(test)]
    fn conn(&self) -> MutexGuard<'_, Writer> {
        self.core.conn()
    }

    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        self.core.read(read)
    }

    fn write<T>(&self, write: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.core.write(write)
    }

    fn stage<T>(&self, write: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.core.stage(write)
    }

    fn settle(&self) -> StoreResult<()> {
        self.core.settle()
    }

    fn refuse_if_broken(&self) -> StoreResult<()> {
        self.core.refuse_if_broken()
    }

    fn backend(&self, e: rusqlite::Error) -> StoreError {
        self.core.backend(e)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The threads end once their queues are empty and closed; joined, so the
        // directory is free when this returns (unless this runs on one of them).
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            worker.join();
        }
        // What is still staged was answered to no one (ids handed out); kept, unless
        // the store refuses writes. Committed here, it is no longer staged: when
        // this runs on the store's own thread (its last handle was dropped by its
        // own work), the flusher may still come to flush it, and must not take
        // the transaction committed here for one SQLite took back.
        let mut writer = self.core.conn();
        if !writer.conn.is_autocommit() && self.core.refuse_if_broken().is_ok() && writer.commit().is_ok() {
            writer.staged = false;
        }
    }
}

/// The writer's connection and whether it holds writes in its open transaction
/// (staged, not yet committed): one owner, its mutex, so no flush can miss them.
struct Writer {
    conn: Connection,
    /// Set when a write is kept in the open transaction, cleared by its commit.
    staged: bool,
    /// The last number the store's counter handed out (ids, transcript and
    /// audit order): counted here, and written to the file's `ids` row once a
    /// commit, in the transaction of the writes that hold the numbers
    /// ([`Writer::commit`]), not with two statements for each number.
    last_id: Cell<u64>,
    /// The number the file's `ids` row holds.
    stored_id: u64,
}

/// The writer's connection as a write sees it: its statements (through
/// `Deref`), and the store's counter.
pub(super) struct Tx<'w> {
    conn: &'w Connection,
    last_id: &'w Cell<u64>,
}

impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Tx<'_> {
    /// The counter's next number. One a crash takes before its commit was never
    /// kept anywhere, so handing it out again is harmless (as sled's are).
    pub(super) fn next_id(&self) -> u64 {
        let next = self.last_id.get() + 1;
        self.last_id.set(next);
        next
    }

    /// Moves the counter on to at least `id`.
    pub(super) fn reserve_ids(&self, id: u64) {
        self.last_id.set(self.last_id.get().max(id));
    }
}

impl Writer {
    /// Commits the open transaction, with the counter brought up to the last
    /// number handed out: a number is stored by the commit that keeps the
    /// writes holding it, so after a crash the counter is past every one kept.
    fn commit(&mut self) -> rusqlite::Result<()> {
        let last = self.last_id.get();
        if last != self.stored_id {
            self.conn.prepare_cached("UPDATE ids SET last = ?1 WHERE one = 1")?.execute([last as i64])?;
        }
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.stored_id = last;
        Ok(())
    }

    /// Whether SQLite took back the open transaction and the writes staged in it
    /// (some errors roll back the whole transaction, such as a full disk).
    fn lost(&self) -> bool {
        self.staged && self.conn.is_autocommit()
    }
}

impl Core {
    fn conn(&self) -> MutexGuard<'_, Writer> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the store as refusing every write: the writes staged in the open
    /// transaction were lost, or may no longer be committed, before anyone heard
    /// of them.
    fn lose(&self, why: &str) -> StoreError {
        self.broken.store(true, Ordering::SeqCst);
        tracing::error!(why, "the store's open transaction is lost; it refuses every write until a restart");
        StoreError::Backend(BROKEN.into())
    }

    /// Runs `read` on a read connection: it sees every write committed before it
    /// began (a write's caller has been answered only after its commit). On the
    /// store's own thread, in the middle of its work, on the writer's connection:
    /// a job sees what it (or one before it) wrote and that is not yet committed.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let answer = match worker::running_for(self) {
            true => read(&self.conn().conn),
            false => self.readers.read(read),
        };
        answer.map_err(|e| self.backend(e))
    }

    /// Writes with `write` (never kept in part: see [`Core::stage`]), then makes
    /// it durable ([`Core::settle`]); what it answered.
    fn write<T>(&self, write: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let began = std::time::Instant::now();
        let answer = self.stage(write)?;
        self.settle()?;
        crate::metrics::global().store_write(began.elapsed());
        Ok(answer)
    }

    /// Runs `write` in the open transaction (begun if none is); not yet
    /// committed, let alone durable.
    ///
    /// A write is kept whole or not at all, without a savepoint of its own (which
    /// cost a tenth of a message's work: SQLite copies every page a savepoint
    /// touches, to take it back). SQLite takes back a failed statement by itself,
    /// so a write that fails before any of its statements changed a row leaves
    /// nothing and the store goes on; one that fails or panics after a change
    /// leaves the open transaction holding half of it, which nothing may commit:
    /// the store then refuses every write until a restart, as when SQLite takes
    /// the transaction back ([`Core::lose`]), and its staged writers hear that
    /// their writes failed. So a write does whatever may fail for its own reasons
    /// (reading, decoding, encoding) before its first change; what is left to
    /// fail after it is the database itself (a full disk, an I/O error), which
    /// ends the store's writes anyway. A write that finds the file damaged ends
    /// them too, changed rows or not: SQLite may have changed pages of a
    /// statement it then failed without counting it.
    fn stage<T>(&self, write: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        // After a failed flush nothing more is written, let alone acknowledged.
        self.refuse_if_broken()?;
        super::reading_here()?;
        let mut writer = self.conn();
        // Lost by anything since the last commit (a read on this connection too).
        if writer.lost() {
            return Err(self.lose("found before a write"));
        }
        let conn = &writer.conn;
        if conn.is_autocommit() {
            conn.prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut begin| begin.execute([]))
                .map_err(|e| self.backend(e))?;
        }
        let watch = PartWay { core: self, conn, before: conn.total_changes() };
        let answer = write(&Tx { conn, last_id: &writer.last_id });
        // No panic can come past here: the watch is done.
        let changed = watch.finish();
        if conn.is_autocommit() {
            // SQLite took back the whole transaction: other writers' changes too.
            return Err(self.lose("a failed write took it with it"));
        }
        match &answer {
            Err(StoreError::Corrupt { .. }) => {
                self.lose("a write found the file damaged");
                return answer;
            }
            Err(_) if changed => return Err(self.lose("a write failed after changing something")),
            _ => {}
        }
        writer.staged = true;
        answer
    }

    /// Makes what this thread staged durable before its caller hears of it: on
    /// the store's own thread, by the flush after its work (see [`worker`]);
    /// anywhere else, by a flush now.
    fn settle(&self) -> StoreResult<()> {
        match worker::running_for(self) {
            true => {
                worker::wrote();
                Ok(())
            }
            false => self.commit(),
        }
    }

    /// Returns once a flush of the log that began after this call has ended;
    /// writers waiting at the same moment share it. A flush commits the open
    /// transaction, then syncs the log.
    fn commit(&self) -> StoreResult<()> {
        self.refuse_if_broken()?;
        let flush = || {
            let mut writer = self.conn();
            // Asked under the writer's lock: a write that lost the transaction
            // marks the store broken while it holds the lock.
            if self.broken.load(Ordering::SeqCst) {
                return Err(BROKEN.to_string());
            }
            if writer.lost() {
                return Err(self.lose("found at a flush").to_string());
            }
            if !writer.conn.is_autocommit() {
                if let Err(e) = writer.commit() {
                    self.broken.store(true, Ordering::SeqCst);
                    return Err(format!("database: {e}"));
                }
            }
            writer.staged = false;
            drop(writer);
            let hooked = match &*self.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(hook) => hook(),
                None => Ok(()),
            };
            let began = std::time::Instant::now();
            let flushed = hooked.and_then(|()| self.wal.sync_data().map_err(|e| e.to_string()));
            crate::metrics::global().flushed(began.elapsed());
            match flushed {
                Ok(()) => self.checkpoints.nudge(),
                Err(_) => self.broken.store(true, Ordering::SeqCst),
            }
            flushed
        };
        let served = |served: super::commit::Served| crate::metrics::global().commit_group(served.writers);
        self.committer.commit(flush, served).map_err(StoreError::Backend)
    }

    /// Fails once a flush has failed (see the module's notes).
    fn refuse_if_broken(&self) -> StoreResult<()> {
        match self.broken.load(Ordering::SeqCst) {
            true => Err(StoreError::Backend(BROKEN.into())),
            false => Ok(()),
        }
    }

    fn backend(&self, e: rusqlite::Error) -> StoreError {
        corrupt_or_backend(e, &self.dir)
    }
}

/// Watches one write for changes it made (rows its finished statements
/// changed, counted by SQLite; a failed statement counts none): one that panics
/// after a change leaves the store refusing writes ([`Core::stage`]).
struct PartWay<'c> {
    core: &'c Core,
    conn: &'c Connection,
    before: u64,
}

impl PartWay<'_> {
    /// Whether the write has changed a row so far.
    fn changed(&self) -> bool {
        self.conn.total_changes() != self.before
    }

    /// The write has returned: whether it changed a row. (Not a panic of the
    /// write's, then, whatever this thread may be unwinding from already.)
    fn finish(self) -> bool {
        let changed = self.changed();
        std::mem::forget(self);
        changed
    }
}

impl Drop for PartWay<'_> {
    /// Dropped unfinished: the write panicked.
    fn drop(&mut self) {
        if self.changed() {
            self.core.lose("a write panicked after changing something");
        }
    }
}

/// Applies the migrations the file lacks (all in one transaction); refuses a
/// file set up by a newer build.
fn migrate(conn: &Connection, dir: &Path) -> StoreResult<()> {
    let found: u32 =
        conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(|e| corrupt_or_backend(e, dir))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema { dir: dir.to_path_buf(), found, supported: VERSION });
    }
    if found == VERSION {
        return Ok(());
    }
    let mut script = String::from("BEGIN IMMEDIATE;");
    for sql in &MIGRATIONS[found as usize..] {
        script.push_str(sql);
    }
    script.push_str(&format!("PRAGMA user_version = {VERSION}; COMMIT;"));
    conn.execute_batch(&script).map_err(|e| corrupt_or_backend(e, dir))
}

/// A damaged file is named as such (with what to do); anything else is the
/// database's own words.
fn corrupt_or_backend(e: rusqlite::Error, dir: &Path) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt { dir: dir.to_path_buf(), detail: e.to_string() }
        }
        _ => StoreError::Backend(format!("database: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_write_fails_when_its_flush_fails_and_so_does_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        s.put_meta("k", "before").unwrap();
        assert_eq!(s.broken(), None);
        s.before_flush(Some(Box::new(|| Err("injected".into()))));
        let err = s.put_meta("k", "v").expect_err("an unflushed write is not acknowledged");
        assert!(err.to_string().contains("injected"), "{err}");
        // A later flush would not prove the lost pages written: nothing more is
        // acknowledged until the store is opened again.
        s.before_flush(None);
        let err = s.put_meta("k", "w").expect_err("no write after a failed flush");
        assert!(err.to_string().contains("restart switchboard"), "{err}");
        assert!(s.broken().is_some_and(|why| why.contains("restart switchboard")));
        drop(s);
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        s.put_meta("k", "again").unwrap();
        assert_eq!(s.meta("k").unwrap().as_deref(), Some("again"));
    }

    /// The store's last handle can be dropped by its own thread (held by the work
    /// it runs, when everything else let go: a runtime going down), which commits
    /// what is staged there; the write's caller still hears that it is durable,
    /// and the store is not taken for one whose transaction SQLite took back.
    #[test]
    fn a_write_whose_work_held_the_last_handle_is_answered_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let (ours_dropped, dropped) = mpsc::channel::<()>();
        let (answer, answered) = mpsc::channel();
        let own = Arc::clone(&store);
        // As `store::blocking` hands work over, holding a handle for it.
        let job: crate::store::Job = Box::new(move || {
            dropped.recv().unwrap();
            let written = own.put_meta("k", "kept");
            // The last handle, dropped on the store's own thread.
            drop(own);
            Box::new(move |durable: StoreResult<()>| answer.send(durable.and(written)).unwrap())
        });
        assert!(store.submit(job).is_ok(), "the store takes work");
        drop(store);
        ours_dropped.send(()).unwrap();
        let answer = answered.recv_timeout(std::time::Duration::from_secs(10)).expect("an answer");
        answer.expect("answered as durable");
        // The directory is free once the store's threads let go of it.
        let started = std::time::Instant::now();
        let reopened = loop {
            match SqliteStore::open(dir.path(), 8) {
                Ok(s) => break s,
                Err(StoreError::Locked { .. }) if started.elapsed().as_secs() < 10 => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(reopened.meta("k").unwrap().as_deref(), Some("kept"));
    }

    /// SQLite prepares a statement again on each use when its plan may depend on
    /// a bound value; the store's statements are written so that none does (see
    /// `records::NEWEST_FIRST`), and stay in the connection's cache.
    #[test]
    fn statements_are_prepared_once_not_on_every_use() {
        use crate::store::model::{text_content, Entry, MemoryBlock, MessageBody};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        for round in 0..3 {
            let entry = Entry::new(None, MessageBody::User { content: text_content(format!("hi {round}")) });
            s.append_entry("c1", &entry).unwrap();
            s.put_block("a1", &MemoryBlock::new(&format!("b{round}"), "v", "d")).unwrap();
            s.kv_put("space", &format!("k{round}"), b"v").unwrap();
            assert!(s.has_entry("c1", entry.id()).unwrap());
            assert_eq!(s.entries_newest_first("c1").count(), round + 1);
            assert_eq!(s.entries("c1").unwrap().len(), round + 1);
            assert_eq!(s.blocks("a1").unwrap().len(), round + 1);
            assert_eq!(s.kv_scan("space", "k").unwrap().len(), round + 1);
            assert!(s.kv_get("space", "k0").unwrap().is_some());
            s.conversations(Some("a1")).unwrap();
            s.grants(Some("chat")).unwrap();
            s.next_id().unwrap();
        }
        // The writer's statements and the readers' (one reader here: one thread).
        let writes = walk_statements(&s.conn().conn);
        let reads = s.core.readers.read(|conn| Ok(walk_statements(conn))).unwrap();
        assert!(writes >= 6 && reads >= 8, "the statements stay cached ({writes} writing, {reads} reading)");
    }

    /// The counter is kept in memory and stored by each commit: the file's row
    /// holds every number a committed write took (so a restart, after a crash
    /// too, hands out only larger ones), `reserve_ids` moves it on, and a
    /// commit without new numbers leaves the row alone.
    #[test]
    fn the_counter_is_stored_by_the_commit_of_the_writes_that_hold_its_numbers() {
        use crate::store::model::{text_content, Entry, MessageBody};
        let dir = tempfile::tempdir().unwrap();
        let stored = |dir: &Path| {
            let file = Connection::open_with_flags(dir.join(FILE), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            file.query_row("SELECT last FROM ids WHERE one = 1", [], |row| row.get::<_, i64>(0)).unwrap() as u64
        };
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        let first = s.next_id().unwrap();
        let entry = Entry::new(None, MessageBody::User { content: text_content("hi") });
        let seq = s.append_entry("c1", &entry).unwrap();
        assert!(first < seq);
        assert_eq!(stored(dir.path()), seq, "committed with the entry that holds it");
        s.put_meta("no number", "1").unwrap();
        assert_eq!(stored(dir.path()), seq);
        s.reserve_ids(1_000).unwrap();
        assert_eq!(stored(dir.path()), 1_000, "reserved numbers are stored at once");
        assert_eq!(s.next_id().unwrap(), 1_001);
        assert!(s.reserve_ids(u64::MAX).is_err(), "a number the file cannot hold is refused");
        assert!(s.reserve_ids(i64::MAX as u64).is_err(), "as is one whose next number it cannot hold");
        assert_eq!(s.next_id().unwrap(), 1_002);
        // Staged, not committed: a crash may take the number and hand it out again.
        let staged = s.stage(|tx| Ok(tx.next_id())).unwrap();
        assert_eq!(stored(dir.path()), 1_000);
        drop(s);
        // Its last handle committed what was staged, the counter with it.
        assert_eq!(stored(dir.path()), staged);
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        assert_eq!(s.next_id().unwrap(), staged + 1, "a restart goes on past every stored number");
        let seq = s.append_entry("c1", &entry).unwrap();
        assert_eq!(s.entries("c1").unwrap().len(), 2);
        assert_eq!(stored(dir.path()), seq);
    }

    /// An entry moves its conversation's time to its own in place: the record
    /// reads back whole with that time; one that is not JSON fails the append
    /// alone, before any change, and the store goes on.
    #[test]
    fn an_entry_moves_its_conversations_time_in_place() {
        use crate::store::model::{text_content, ConversationRecord, Entry, MessageBody};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        let record = ConversationRecord { id: "c1".into(), agent_id: "a1".into(), created_at: 5, updated_at: 5 };
        s.put_conversation(&record).unwrap();
        let mut entry = Entry::new(None, MessageBody::User { content: text_content("hi") });
        entry.msg.timestamp = 1_764_000_000_123;
        s.append_entry("c1", &entry).unwrap();
        let moved = s.conversation("c1").unwrap().unwrap();
        assert_eq!(moved, ConversationRecord { updated_at: 1_764_000_000_123, ..record });
        s.conn().conn.execute("UPDATE conversations SET body = X'7B6E6F74' WHERE id = 'c1'", []).unwrap();
        let later = Entry::new(None, MessageBody::User { content: text_content("again") });
        assert!(s.append_entry("c1", &later).is_err(), "a record that is not JSON fails the append");
        assert_eq!(s.broken(), None, "alone");
        assert_eq!(s.entries("c1").unwrap().len(), 1);
        s.put_meta("later", "1").unwrap();
    }

    /// A record larger than SQLite takes (its length limit, lowered here) fails
    /// its own write before any change: an entry (whose write first moves its
    /// conversation's time) and a batch (whose first put fits) leave nothing,
    /// and the store goes on.
    #[test]
    fn a_record_too_large_for_the_file_fails_its_write_alone() {
        use crate::store::model::{text_content, ConversationRecord, Entry, MessageBody};
        use crate::store::{Claim, KvBatch};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        let record = ConversationRecord { id: "c1".into(), agent_id: "a1".into(), created_at: 5, updated_at: 5 };
        s.put_conversation(&record).unwrap();
        s.conn().conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 20_000).unwrap();
        let mut huge = Entry::new(None, MessageBody::User { content: text_content("x".repeat(30_000)) });
        huge.msg.timestamp = 1_764_000_000_123;
        let err = s.append_entry("c1", &huge).expect_err("too large");
        assert!(err.to_string().contains("more than the store takes"), "{err}");
        let mut batch = KvBatch::new();
        batch.put("space", "small", b"fits".to_vec()).put("space", "huge", vec![b'x'; 30_000]);
        assert!(s.kv_write(&batch).is_err());
        assert_eq!(s.broken(), None, "the store goes on");
        assert_eq!(s.conversation("c1").unwrap(), Some(record), "its conversation's time is not moved");
        assert!(s.entries("c1").unwrap().is_empty());
        assert_eq!(s.kv_get("space", "small").unwrap(), None, "the batch's first put is not kept");
        // A value that fits alone, in a row that does not (its other columns
        // and header): refused before the first change too.
        let mut batch = KvBatch::new();
        batch.put("space", "small", b"fits".to_vec()).put("space", "row", vec![b'x'; 19_990]);
        assert!(s.kv_write(&batch).is_err());
        assert_eq!(s.broken(), None, "the store goes on");
        assert_eq!(s.kv_get("space", "small").unwrap(), None);
        // A key too large to bind, removed after a put: refused before the put.
        let mut batch = KvBatch::new();
        batch.put("space", "small", b"fits".to_vec()).remove("space", &"k".repeat(30_000));
        assert!(s.kv_write(&batch).is_err());
        assert_eq!(s.broken(), None, "the store goes on");
        assert_eq!(s.kv_get("space", "small").unwrap(), None);
        // Under a lease another holds now, a write hears that, too large or not.
        let ttl = std::time::Duration::from_secs(60);
        let Claim::Held(lease) = s.lease_claim("chat", "me", ttl).unwrap() else { panic!("a free lease") };
        s.lease_release(&lease).unwrap();
        assert!(matches!(s.lease_claim("chat", "another", ttl).unwrap(), Claim::Held(_)));
        assert_eq!(s.append_entry_fenced(&lease, "c1", &huge).unwrap(), None);
        assert!(!s.kv_write_fenced(&lease, KvBatch::new().put("space", "huge", vec![b'x'; 30_000])).unwrap());
        s.append_entry("c1", &Entry::new(None, MessageBody::User { content: text_content("hi") })).unwrap();
        s.kv_write(KvBatch::new().put("space", "small", b"fits".to_vec())).unwrap();
        assert_eq!(s.entries("c1").unwrap().len(), 1);
    }

    /// How many statements `conn` keeps; fails on one prepared again on use.
    fn walk_statements(conn: &Connection) -> usize {
        let (mut statement, mut seen) = (std::ptr::null_mut(), 0);
        loop {
            // SAFETY: the connection is open and held (its mutex, or lent to this
            // thread) for the whole walk; only its statements' counters are read.
            unsafe {
                statement = rusqlite::ffi::sqlite3_next_stmt(conn.handle(), statement);
                if statement.is_null() {
                    break;
                }
                let sql = std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_sql(statement)).to_string_lossy();
                let again =
                    rusqlite::ffi::sqlite3_stmt_status(statement, rusqlite::ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
                assert_eq!(again, 0, "prepared again on use: {sql}");
            }
            seen += 1;
        }
        seen
    }

    /// Async callers' work runs on the store's thread, their writes share
    /// flushes, and none is answered before the flush that covers its write; reads
    /// go on meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handed_over_writes_share_a_flush_and_are_answered_only_after_it() {
        use std::sync::atomic::AtomicUsize;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let store: Arc<dyn Store> = sqlite.clone();
        store.kv_put("space", "before", b"v").unwrap();
        // The first flush from here on waits until it is let go; every flush counts.
        let (entered, has_entered) = mpsc::channel();
        let (let_go, wait) = mpsc::channel::<()>();
        let (armed, wait) = (AtomicBool::new(true), Mutex::new(wait));
        let flushes = Arc::new(AtomicUsize::new(0));
        let counted = flushes.clone();
        sqlite.before_flush(Some(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            if armed.swap(false, Ordering::SeqCst) {
                let _ = entered.send(());
                let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
            Ok(())
        })));
        let writers: Vec<_> = (0..20)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    crate::store::blocking(&store, move |s| s.kv_put("space", &format!("k{n}"), b"v")).await
                })
            })
            .collect();
        tokio::task::spawn_blocking(move || has_entered.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("a flush began");
        // A read is not held up by the flush.
        let read = crate::store::read(&store, |s| s.kv_get("space", "before")).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"v"[..]));
        // Work on the store's thread that only reads may have read the writes
        // waiting for that flush: it is answered after it too.
        let reader = {
            let store = store.clone();
            tokio::spawn(async move { crate::store::blocking(&store, |s| Ok(s.kv_scan("space", "")?.len())).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(writers.iter().all(|w| !w.is_finished()), "no write is answered before its flush");
        assert!(!reader.is_finished(), "nor what may have read them");
        let_go.send(()).unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("answered").unwrap().unwrap();
        assert!(seen >= 1, "{seen}");
        for writer in writers {
            tokio::time::timeout(Duration::from_secs(10), writer).await.expect("answered").unwrap().unwrap();
        }
        let flushed = flushes.load(Ordering::SeqCst);
        assert!(flushed <= 10, "20 writes waiting together shared their flushes ({flushed})");
        assert_eq!(store.kv_scan("space", "k").unwrap().len(), 20);
    }

    /// A write that fails before it changed anything (its statement refused by
    /// SQLite, which takes that statement back, or its own check) leaves
    /// nothing: what others wrote into the same open transaction is committed by
    /// the next flush, and the store goes on.
    #[test]
    fn a_write_that_fails_before_changing_anything_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        s.put_meta("taken", "0").unwrap();
        // Staged, not yet flushed: the open transaction holds it.
        s.stage(|tx| records_exec(tx, "INSERT INTO meta (key, value) VALUES ('kept', '1')")).unwrap();
        // Its one statement breaks the key's uniqueness: SQLite refuses it whole.
        let refused = s.write(|tx| records_exec(tx, "INSERT INTO meta (key, value) VALUES ('taken', '2')"));
        assert!(refused.is_err());
        let declined = s.write(|_| Err::<(), _>(StoreError::Backend("nothing to do".into())));
        assert!(declined.is_err());
        s.put_meta("after", "3").unwrap();
        assert_eq!(s.broken(), None);
        drop(s);
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        assert_eq!(s.meta("taken").unwrap().as_deref(), Some("0"));
        assert_eq!(s.meta("kept").unwrap().as_deref(), Some("1"));
        assert_eq!(s.meta("after").unwrap().as_deref(), Some("3"));
    }

    /// A write that fails after one of its statements changed a row cannot be
    /// taken back alone (writes have no savepoints): the store refuses every
    /// write from then on, the writes staged beside it are never answered Ok,
    /// and none of it is ever committed. The same for one that panics there.
    #[test]
    fn a_write_that_fails_after_a_change_is_never_half_kept() {
        for panics in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = SqliteStore::open(dir.path(), 8).unwrap();
            s.put_meta("before", "0").unwrap();
            s.stage(|tx| records_exec(tx, "INSERT INTO meta (key, value) VALUES ('beside', '1')")).unwrap();
            let half = |tx: &Tx<'_>| {
                records_exec(tx, "INSERT INTO meta (key, value) VALUES ('half', '2')")?;
                if panics {
                    panic!("a bug between two statements");
                }
                records_exec(tx, "INSERT INTO meta (key, value) VALUES ('before', '3')")
            };
            match panics {
                false => assert!(s.write(half).is_err(), "its second statement is refused"),
                true => {
                    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.write(half)));
                    assert!(unwound.is_err(), "it panicked");
                }
            }
            assert!(s.broken().is_some_and(|why| why.contains("restart switchboard")), "panics: {panics}");
            let err = s.core.commit().expect_err("what was staged beside it is not answered as durable");
            assert!(err.to_string().contains("restart switchboard"), "{err}");
            assert!(s.put_meta("later", "4").is_err(), "no write after it");
            drop(s);
            let s = SqliteStore::open(dir.path(), 8).unwrap();
            assert_eq!(s.meta("before").unwrap().as_deref(), Some("0"), "panics: {panics}");
            for never in ["half", "beside", "later"] {
                assert_eq!(s.meta(never).unwrap(), None, "{never} (panics: {panics})");
            }
        }
    }

    /// SQLite takes back the whole open transaction on some errors (a full disk,
    /// an I/O error), with every write staged in it: no one is answered Ok for
    /// them, and the store refuses writes from then on.
    #[test]
    fn a_transaction_sqlite_took_back_is_never_answered_ok() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        s.stage(|tx| records_exec(tx, "INSERT INTO meta (key, value) VALUES ('staged', '1')")).unwrap();
        // What SQLite does by itself on such an error.
        s.conn().conn.execute_batch("ROLLBACK").unwrap();
        let err = s.core.commit().expect_err("the flush for the lost write fails");
        assert!(err.to_string().contains("restart switchboard"), "{err}");
        assert!(s.broken().is_some());
        assert!(s.put_meta("later", "2").is_err(), "no write after it");

        // Found by the next write as well, before any flush.
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        s.stage(|tx| records_exec(tx, "INSERT INTO meta (key, value) VALUES ('staged', '1')")).unwrap();
        s.conn().conn.execute_batch("ROLLBACK").unwrap();
        assert!(s.put_meta("next", "3").is_err(), "the next write finds the loss");
        assert!(s.broken().is_some());
    }

    /// SQLite may have changed pages of a statement that then failed on a
    /// damaged file without counting it: a write that meets one ends the
    /// store's writes even when it changed no row, and says why.
    #[test]
    fn a_write_that_finds_the_file_damaged_ends_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        let damaged = s
            .write(|_| Err::<(), _>(StoreError::Corrupt { dir: dir.path().to_path_buf(), detail: "malformed".into() }));
        assert!(matches!(damaged, Err(StoreError::Corrupt { .. })), "{damaged:?}");
        assert!(s.broken().is_some_and(|why| why.contains("restart switchboard")));
        assert!(s.put_meta("later", "1").is_err(), "no write after it");
    }

    /// A write made while the thread already unwinds from some other panic (a
    /// value's drop that writes) is kept: only a panic of the write's own ends
    /// the store's writes.
    #[test]
    fn a_write_made_while_unwinding_is_kept() {
        struct WritesWhenDropped<'a>(&'a SqliteStore, &'a Mutex<Option<StoreResult<()>>>);
        impl Drop for WritesWhenDropped<'_> {
            fn drop(&mut self) {
                *self.1.lock().unwrap() = Some(self.0.put_meta("from a drop", "1"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path(), 8).unwrap();
        let written = Mutex::new(None);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _writes = WritesWhenDropped(&s, &written);
            panic!("something else");
        }));
        assert!(unwound.is_err());
        let written = written.lock().unwrap().take().expect("the drop wrote");
        assert!(written.is_ok(), "{written:?}");
        assert_eq!(s.broken(), None);
        assert_eq!(s.meta("from a drop").unwrap().as_deref(), Some("1"));
    }

    fn records_exec(tx: &Connection, sql: &str) -> StoreResult<()> {
        tx.execute(sql, []).map(drop).map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// Work that panics on the store's thread fails alone; the thread goes on.
    #[tokio::test]
    async fn work_that_panics_fails_alone_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let err = crate::store::blocking(&store, |s| -> StoreResult<()> {
            s.put_meta("half", "way")?;
            panic!("a bug in the work")
        })
        .await
        .expect_err("the caller hears that its work failed");
        assert!(err.to_string().contains("store task failed"), "{err}");
        let next = crate::store::blocking(&store, |s| s.put_meta("next", "fine"));
        tokio::time::timeout(std::time::Duration::from_secs(10), next)
            .await
            .expect("the store's thread goes on")
            .unwrap();
        assert_eq!(store.meta("next").unwrap().as_deref(), Some("fine"));
        assert_eq!(store.broken(), None);
    }

    /// A write slipped into a read (which may run on an async thread) is refused.
    #[tokio::test]
    async fn a_write_inside_a_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let err = crate::store::read(&store, |s| s.put_meta("k", "v")).await.expect_err("refused");
        assert!(err.to_string().contains("inside a read"), "{err}");
        assert_eq!(store.meta("k").unwrap(), None);
        store.put_meta("k", "v").unwrap();
    }

    /// What `serve` waits on beside the signals: it ends once the store refuses
    /// every write, for its supervisor to start it again.
    #[tokio::test]
    async fn the_daemon_hears_when_its_store_refuses_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = std::sync::Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let store: std::sync::Arc<dyn Store> = sqlite.clone();
        let every = std::time::Duration::from_millis(10);
        let watching = tokio::spawn(async move { crate::store::broken(&store, every).await });
        sqlite.put_meta("k", "v").unwrap();
        tokio::time::sleep(every * 5).await;
        assert!(!watching.is_finished(), "a store that writes is not broken");
        sqlite.before_flush(Some(Box::new(|| Err("injected".into()))));
        sqlite.put_meta("k", "w").expect_err("the flush failed");
        let why = tokio::time::timeout(std::time::Duration::from_secs(5), watching).await.expect("heard").unwrap();
        assert!(why.contains("restart switchboard"), "{why}");
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteStore::open(dir.path(), 8).unwrap();
        let err = SqliteStore::open(dir.path(), 8).err().expect("one process per data directory");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }

    #[test]
    fn the_data_directory_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = SqliteStore::open(&data, 8).unwrap();
        s.put_meta("x", "y").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for name in [FILE.to_string(), format!("{FILE}-wal"), format!("{FILE}-shm")] {
            assert_eq!(mode(&data.join(&name)), 0o600, "{name}");
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), 8).unwrap());
        let conn = Connection::open(dir.path().join(FILE)).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", VERSION + 1)).unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path(), 8).err().expect("a newer schema must be refused");
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), 8).unwrap());
        std::fs::write(dir.path().join(FILE), vec![0xA5u8; 8192]).unwrap();
        let _ = std::fs::remove_file(dir.path().join(format!("{FILE}-wal")));
        let err = SqliteStore::open(dir.path(), 8).err().expect("a corrupt store must not open");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }
}
