//! The SQLite store's checkpointer: copies the write-ahead log into the database
//! file on a thread and connection of its own, so the writer never does it.
//!
//! Left to SQLite, the commit that takes the log past its limit copies the log
//! into the file (and syncs both) while it holds the writer's lock: every write
//! behind it waits, and a small limit copies the pages written most often
//! (the same few, commit after commit) over and over. Here the writer's commits
//! only count the log's pages ([`watch`]); once a flush leaves more than
//! [`PAGES`] in it, and again for each [`PAGES`]`/ 2` more, the flusher wakes
//! the checkpointer ([`Checkpointer::nudge`]), which copies what it can without
//! waiting for anyone (a passive checkpoint: SQLite syncs the log before it
//! copies, and the file once it has copied all of the log). The writer starts
//! the log over at its next transaction once all of it is copied and no read
//! still uses it, and cuts the file back to [`KEPT_BYTES`] then. While writes
//! never pause, the checkpointer never catches up with the last one, so past
//! [`CATCH_UP`] the writer copies the little left itself, after a commit, and
//! the log starts over.
//!
//! Durability does not depend on it: a write is acknowledged once the log
//! holding it is synced (the flusher's work); a crash during a checkpoint
//! leaves the log, which the next open reads again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// The log's pages past which it is copied into the file (16 MiB of 4 KiB pages).
pub(super) const PAGES: usize = 4096;

/// The log's pages past which the writer copies the rest itself, after its
/// commit: while writes never pause, the checkpointer never catches up with the
/// last one, and the log starts over only once all of it is copied.
pub(super) const CATCH_UP: usize = 2 * PAGES;

/// Nudges in a row that found another checkpoint at work before that is worth a
/// warning (a burst past [`CATCH_UP`] makes one or two).
const BUSY_WARNED: u32 = 10;

/// What the log's file is cut back to when it starts over (after a burst that
/// outran the checkpointer), in bytes: about what [`CATCH_UP`] pages take.
pub(super) const KEPT_BYTES: u64 = 33 << 20;

/// Has the writer's connection count the log's pages after each of its commits
/// into `pages` (in place of SQLite's own checkpoints after a commit, past
/// 1,000 pages), copy the rest itself past [`CATCH_UP`], and keep the log's
/// file to [`KEPT_BYTES`] when it starts over.
pub(super) fn watch(writer: &mut Connection, pages: Arc<AtomicUsize>) -> rusqlite::Result<()> {
    writer.execute_batch(&format!("PRAGMA journal_size_limit = {KEPT_BYTES};"))?;
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, in_log: std::ffi::c_int| {
        let in_log = usize::try_from(in_log).unwrap_or(0);
        pages.store(in_log, Ordering::Relaxed);
        if in_log > CATCH_UP {
            // Passive, and its failure (the checkpointer at work) ignored: an
            // error here would fail the commit, which is already made.
            let _ = wal.checkpoint();
        }
        Ok(())
    }))
}

/// The checkpointer's thread, woken by [`Checkpointer::nudge`]; it ends (and is
/// joined) when dropped, before the writer's connection closes (the last one
/// to close copies what is left and removes the log).
pub(super) struct Checkpointer {
    nudges: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The log's pages after the writer's last commit (see [`watch`]).
    pages: Arc<AtomicUsize>,
    /// The log's pages when the checkpointer was last woken (set by flushes,
    /// which run one at a time).
    woken_at: AtomicUsize,
    /// While set, nudges are not passed on (a test's way to stall the checkpointer).
    #[cfg(test)]
    held: std::sync::atomic::AtomicBool,
}

impl Checkpointer {
    /// Starts the thread, which checkpoints through `conn` (a read-write
    /// connection of its own to the store's file).
    pub(super) fn start(conn: Connection) -> std::io::Result<Checkpointer> {
        let (nudges, nudged) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("store-checkpoint".into()).spawn(move || {
            let mut busy = 0;
            while nudged.recv().is_ok() {
                // Passive: copies what no read still needs, waits for nobody. A
                // failure leaves the log as it is, for the next nudge (or the last
                // connection's close) to copy.
                let Err(e) = conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE) else {
                    busy = 0;
                    continue;
                };
                // Busy: another checkpoint is at work, most often the writer's
                // own past CATCH_UP in a burst; worth a warning only if it lasts
                // (then once for each BUSY_WARNED in a row).
                if e.sqlite_error_code() == Some(rusqlite::ffi::ErrorCode::DatabaseBusy) {
                    busy += 1;
                    if busy % BUSY_WARNED != 0 {
                        tracing::debug!("the store's log is being copied by another checkpoint");
                        continue;
                    }
                } else {
                    busy = 0;
                }
                tracing::warn!(error = %e, "the store's log could not be copied into its file yet");
            }
        })?;
        Ok(Checkpointer {
            nudges: Some(nudges),
            thread: Some(thread),
            pages: Arc::default(),
            woken_at: AtomicUsize::new(0),
            #[cfg(test)]
            held: Default::default(),
        })
    }

    /// Where the writer's commits count the log's pages (for [`watch`]).
    pub(super) fn pages(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.pages)
    }

    /// After a flush: wakes the checkpointer if the log holds more than
    /// [`PAGES`] and has grown by half that since it was last woken (or has
    /// started over since), not after every flush: each checkpoint syncs two
    /// files, and one that finds little new to copy is wasted.
    pub(super) fn nudge(&self) {
        #[cfg(test)]
        if self.held.load(Ordering::SeqCst) {
            return;
        }
        let (pages, woken_at) = (self.pages.load(Ordering::Relaxed), self.woken_at.load(Ordering::Relaxed));
        if pages > PAGES && (pages < woken_at || pages >= woken_at + PAGES / 2) {
            self.woken_at.store(pages, Ordering::Relaxed);
            if let Some(nudges) = &self.nudges {
                let _ = nudges.try_send(());
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudges = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::sqlite::{SqliteStore, FILE};
    use crate::store::{KvBatch, Store};

    /// Writes `pages` pages' worth of new records (4 KiB values, about a page
    /// each), in batches of 64.
    fn fill(store: &SqliteStore, from: usize, pages: usize) {
        for batch_start in (from..from + pages).step_by(64) {
            let mut batch = KvBatch::new();
            for n in batch_start..(batch_start + 64).min(from + pages) {
                batch.put("fill", &format!("{n:08}"), vec![n as u8; 4000]);
            }
            store.kv_write(&batch).unwrap();
        }
    }

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// The writer never copies the log into the file below [`CATCH_UP`]; past
    /// [`PAGES`], the checkpointer does. What was written reads back after a
    /// reopen.
    #[test]
    fn the_log_is_copied_by_the_checkpointer_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let store = SqliteStore::open(dir.path(), 8).unwrap();
        let empty = size(&file);
        // More than SQLite's own limit (1,000 pages), less than ours.
        fill(&store, 0, PAGES / 2);
        assert_eq!(size(&file), empty, "the writer copied the log into the file");
        // Past ours: copied, by the checkpointer, soon (at least what the log
        // held at its first nudge, which the log starting over cannot undo).
        fill(&store, PAGES / 2, PAGES);
        assert!(store.core.checkpoints.pages.load(Ordering::SeqCst) < CATCH_UP, "not the writer's part yet");
        let deadline = Instant::now() + Duration::from_secs(30);
        while size(&file) < empty + (PAGES as u64 / 2) * 4096 {
            assert!(Instant::now() < deadline, "the log was not copied: the file is {} bytes", size(&file));
            std::thread::sleep(Duration::from_millis(20));
        }
        fill(&store, PAGES + PAGES / 2, PAGES / 4);
        drop(store);
        let store = SqliteStore::open(dir.path(), 8).unwrap();
        let kept = store.kv_scan("fill", "").unwrap();
        assert_eq!(kept.len(), PAGES * 2 - PAGES / 4, "every record is kept");
        assert!(kept.iter().enumerate().all(|(n, (key, value))| *key == format!("{n:08}") && value[0] == n as u8));
    }

    /// With the checkpointer behind (held here), the writer copies the log
    /// itself past [`CATCH_UP`], so it starts over instead of growing.
    #[test]
    fn the_writer_copies_the_log_when_the_checkpointer_is_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join(FILE), dir.path().join(format!("{FILE}-wal")));
        let store = SqliteStore::open(dir.path(), 8).unwrap();
        store.core.checkpoints.held.store(true, Ordering::SeqCst);
        let empty = size(&file);
        fill(&store, 0, PAGES + PAGES / 2);
        assert_eq!(size(&file), empty, "copied before the writer's limit");
        fill(&store, PAGES + PAGES / 2, PAGES);
        assert!(size(&file) > (PAGES as u64) * 4096, "past its limit, the writer copied the log");
        fill(&store, 2 * PAGES + PAGES / 2, PAGES);
        assert!(size(&log) <= KEPT_BYTES + 64 * 4096 * 2, "the log started over: {} bytes", size(&log));
        assert_eq!(store.kv_scan("fill", "").unwrap().len(), 3 * PAGES + PAGES / 2);
    }

    /// A read that holds the log (nothing after its snapshot can be copied)
    /// lets it grow past [`KEPT_BYTES`]; once it ends, the log is copied, starts
    /// over, and its file is cut back (`journal_size_limit`).
    #[test]
    fn the_log_is_cut_back_when_it_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join(FILE), dir.path().join(format!("{FILE}-wal")));
        let store = SqliteStore::open(dir.path(), 8).unwrap();
        // Only the writer copies here, so no copy of the checkpointer's is
        // under way (and the writer's refused) when the read ends.
        store.core.checkpoints.held.store(true, Ordering::SeqCst);
        fill(&store, 0, 64);
        let reader = rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader.query_row("SELECT count(*) FROM kv", [], |row| row.get(0)).unwrap();
        fill(&store, 64, 3 * PAGES);
        assert!(size(&log) > KEPT_BYTES, "held by the read: {} bytes", size(&log));
        drop(reader);
        // The next commit copies all of it (past the writer's limit), the one
        // after starts the log over and cuts its file back.
        fill(&store, 64 + 3 * PAGES, 64);
        fill(&store, 128 + 3 * PAGES, 64);
        assert!(size(&log) <= KEPT_BYTES, "cut back: {} bytes", size(&log));
        assert_eq!(store.kv_scan("fill", "").unwrap().len(), 3 * PAGES + 192);
    }
}
