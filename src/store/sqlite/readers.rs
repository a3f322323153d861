//! The SQLite store's read connections: a read runs on a connection of its own
//! from a small pool, beside the writer and beside other reads (a reader of the
//! write-ahead log sees the last commit), so it never waits for a write, its
//! flush or a checkpoint, and is short enough to run on the caller's thread.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

/// How many read connections may be open at once; a read beyond them waits for
/// one to come back.
pub(super) const MOST: usize = 8;

/// The pool of read connections of one store file.
pub(super) struct Readers {
    path: PathBuf,
    /// Each connection's page cache, in KiB (their sum stays within the
    /// readers' share of `store.cache_mb`).
    cache_kib: u64,
    /// How many prepared statements each keeps.
    statements: usize,
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    /// Open connections, idle or lent.
    open: usize,
}

impl Readers {
    /// A pool for the file at `path` whose connections share `cache_kib` KiB of
    /// page cache.
    pub(super) fn new(path: PathBuf, cache_kib: u64, statements: usize) -> Readers {
        Readers {
            path,
            cache_kib: (cache_kib / MOST as u64).max(64),
            statements,
            pool: Mutex::new(Pool { idle: Vec::new(), open: 0 }),
            returned: Condvar::new(),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on a read connection (opened if none is idle and fewer than
    /// [`MOST`] are open; otherwise after waiting for one).
    pub(super) fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let lent = self.take()?;
        match &lent.conn {
            Some(conn) => read(conn),
            None => unreachable!("a lent connection is given back only when dropped"),
        }
    }

    fn take(&self) -> rusqlite::Result<Lent<'_>> {
        let mut pool = self.pool();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lent { readers: self, conn: Some(conn) });
            }
            if pool.open < MOST {
                pool.open += 1;
                drop(pool);
                return match self.open() {
                    Ok(conn) => Ok(Lent { readers: self, conn: Some(conn) }),
                    Err(e) => {
                        self.pool().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self.returned.wait(pool).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A negative cache size is in KiB.
        conn.execute_batch(&format!("PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY;", self.cache_kib))?;
        conn.set_prepared_statement_cache_capacity(self.statements);
        Ok(conn)
    }
}

/// A connection lent by the pool, given back when dropped (a panic included).
struct Lent<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.pool().idle.push(conn);
            self.readers.returned.notify_one();
        }
    }
}
