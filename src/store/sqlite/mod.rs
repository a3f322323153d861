//! The SQLite implementation of [`Store`](super::Store), the default for one
//! machine: the same records as the other stores (JSON values) in tables of one
//! file in `data_dir`, with memory bounded by its page cache (`store.cache_mb`).
//!
//! Durability is group commit, as in [`super::commit`]: each store call is one
//! SQLite transaction, appended to the write-ahead log without waiting for the
//! disk (`synchronous = NORMAL`); the writer then waits for a flush of the log
//! file (`fdatasync`) that began after its commit, shared by every writer of that
//! moment. SQLite's own checkpoints sync the log before they copy it into the
//! database file, so a flushed commit survives a crash of the process or the
//! machine. One connection serves every call (SQLite writes one transaction at a
//! time anyway), held for the statement (and for SQLite's own checkpoint, now and
//! then, inside a commit), never during the group flush. A flush that fails ends
//! the store's writes until a restart: the kernel may have dropped the pages it
//! could not write, so a later flush proves nothing about them.

mod records;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// Why every write fails after a failed flush.
const BROKEN: &str = "an earlier write could not be flushed to disk; restart switchboard";

/// The schema version this build sets up.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// The store in `data_dir/store.sqlite3`, one process at a time (the data
/// directory's lock).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The write-ahead log, opened for flushing it.
    wal: File,
    dir: PathBuf,
    committer: Committer,
    flush_hook: Mutex<Option<FlushHook>>,
    /// Set when a flush failed: no write is acknowledged after it.
    broken: AtomicBool,
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
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(corrupt)?;
        // One process (the directory's lock): the log's index lives in this
        // process's memory, not in a shared file. A negative cache size is in KiB.
        conn.execute_batch(&format!(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY;",
            cache_mb.max(1) * 1024
        ))
        .map_err(corrupt)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(corrupt)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("the store could not use a write-ahead log (mode {mode})")));
        }
        migrate(&conn, dir)?;
        // Every statement stays prepared: the store has about fifty, and the
        // default cache of sixteen would parse most of them again on each use.
        conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
        // The log exists once something was written (the schema, or this).
        conn.execute_batch("BEGIN IMMEDIATE; UPDATE ids SET last = last WHERE one = 1; COMMIT;").map_err(corrupt)?;
        let wal = File::open(dir.join(format!("{FILE}-wal"))).map_err(io)?;
        super::sled_store::owner_only(dir).map_err(io)?;
        // The files' names are durable too (SQLite syncs the directory only at
        // its first checkpoint).
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            wal,
            dir: dir.to_path_buf(),
            committer: Committer::new(),
            flush_hook: Mutex::new(None),
            broken: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// Sets (or clears) a hook that runs before every flush (for tests).
    pub fn before_flush(&self, hook: Option<FlushHook>) {
        *self.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on the connection.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        read(&self.conn()).map_err(|e| self.backend(e))
    }

    /// Runs `write` in one transaction (rolled back when it fails or answers
    /// `Err`), then waits for the flush that makes it durable; what it answered.
    fn write<T>(&self, write: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        // After a failed flush nothing more is written, let alone acknowledged.
        self.refuse_if_broken()?;
        let began = std::time::Instant::now();
        let answer = {
            let conn = self.conn();
            let tx = Tx::begin(&conn).map_err(|e| self.backend(e))?;
            let answer = write(&tx)?;
            tx.commit().map_err(|e| self.backend(e))?;
            answer
        };
        self.commit()?;
        crate::metrics::global().store_write(began.elapsed());
        Ok(answer)
    }

    /// Returns once a flush of the log that began after this call has ended;
    /// writers waiting at the same moment share it.
    fn commit(&self) -> StoreResult<()> {
        self.refuse_if_broken()?;
        let flush = || {
            if self.broken.load(Ordering::SeqCst) {
                return Err(BROKEN.to_string());
            }
            let hooked = match &*self.flush_hook.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(hook) => hook(),
                None => Ok(()),
            };
            let began = std::time::Instant::now();
            let flushed = hooked.and_then(|()| self.wal.sync_data().map_err(|e| e.to_string()));
            crate::metrics::global().flushed(began.elapsed());
            if flushed.is_err() {
                self.broken.store(true, Ordering::SeqCst);
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

/// A write transaction, begun and ended by prepared statements kept in the
/// connection's cache (rusqlite's own transactions parse `BEGIN` and `COMMIT` anew
/// each time); rolled back when dropped before its commit, or if the commit fails.
struct Tx<'c> {
    conn: &'c Connection,
}

impl<'c> Tx<'c> {
    /// Begins a transaction that takes the write lock at once.
    fn begin(conn: &'c Connection) -> rusqlite::Result<Tx<'c>> {
        // One left open by a rollback that failed would fail every later begin.
        if !conn.is_autocommit() {
            conn.prepare_cached("ROLLBACK")?.execute([])?;
        }
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Tx { conn })
    }

    /// Commits it (appends it to the log; durable after the next flush).
    fn commit(self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut rollback| rollback.execute([]));
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
        let conn = s.conn();
        let (mut statement, mut seen) = (std::ptr::null_mut(), 0);
        loop {
            // SAFETY: the connection is open and held (its mutex) for the whole
            // walk; only its statements' counters are read.
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
        assert!(seen >= 12, "the statements stay cached ({seen})");
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
        for name in [FILE.to_string(), format!("{FILE}-wal")] {
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
