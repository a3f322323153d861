//! Group commit: writers that finished their writes at about the same moment share
//! one durable flush, and none of them returns before a flush that began after its
//! write has ended.
//!
//! A writer applies its write, then calls [`Committer::commit`]. If no flush is
//! running it becomes the leader: it takes the group gathered so far (itself
//! included), flushes once, and tells the group how it went. If a flush is running,
//! the writer joins the next group and waits; when that flush ends, one waiter of
//! the next group leads it. A flush covers every write that preceded the moment
//! its group was taken, so an acknowledgement that waits for `commit` never goes
//! out before the write it acknowledges is on disk. A failed flush fails its whole
//! group.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The outcome of one flush, shared by its group.
type Outcome = OnceLock<Result<(), String>>;

/// Serves durable flushes to many writers, one flush per group of writers waiting
/// together.
pub struct Committer {
    state: Mutex<State>,
    ended: Condvar,
}

struct State {
    /// Whether a leader is flushing right now.
    flushing: bool,
    /// The group that the next flush serves.
    next: Arc<Outcome>,
    /// Writers in `next`.
    waiting: usize,
}

/// What one flush served: how many writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub writers: usize,
}

impl Default for Committer {
    fn default() -> Committer {
        Committer::new()
    }
}

impl Committer {
    pub fn new() -> Committer {
        Committer {
            state: Mutex::new(State { flushing: false, next: Arc::default(), waiting: 0 }),
            ended: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a flush that began after this call has ended: `Ok` when it
    /// made the caller's earlier writes durable. Only a leader calls `flush` (the
    /// store's own), and then `on_flush` with how many writers it served.
    pub fn commit(
        &self,
        flush: impl FnOnce() -> Result<(), String>,
        on_flush: impl FnOnce(Served),
    ) -> Result<(), String> {
        let mut state = self.state();
        let group = Arc::clone(&state.next);
        state.waiting += 1;
        loop {
            if let Some(outcome) = group.get() {
                return outcome.clone();
            }
            if !state.flushing {
                // Lead: the group is closed now; later writers gather in a new one.
                state.flushing = true;
                let writers = std::mem::replace(&mut state.waiting, 0);
                state.next = Arc::default();
                drop(state);
                // Even if the flush panics, the group hears of it and the next
                // group may lead: no writer waits forever.
                let leading = Leading { committer: self, group: &group };
                let outcome = flush();
                let _ = group.set(outcome.clone());
                drop(leading);
                on_flush(Served { writers });
                return outcome;
            }
            state = self.ended.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The leader's duty to end its flush, done when dropped (a panic included).
struct Leading<'a> {
    committer: &'a Committer,
    group: &'a Outcome,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let _ = self.group.set(Err("the store's flush failed unexpectedly".into()));
        self.committer.state().flushing = false;
        self.committer.ended.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A flush that takes `slow`, counts itself, and notes, when it begins, how
    /// many writes had been made by then (what it can cover).
    struct Disk {
        writes: AtomicUsize,
        flushes: AtomicUsize,
        durable: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    fn disk() -> Arc<Disk> {
        Arc::new(Disk {
            writes: AtomicUsize::new(0),
            flushes: AtomicUsize::new(0),
            durable: AtomicUsize::new(0),
            fail: Default::default(),
        })
    }

    impl Disk {
        fn flush(&self, slow: Duration) -> Result<(), String> {
            let covered = self.writes.load(Ordering::SeqCst);
            std::thread::sleep(slow);
            self.flushes.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err("disk full".into());
            }
            self.durable.fetch_max(covered, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_lone_writer_gets_its_own_flush() {
        let disk = disk();
        let committer = Committer::new();
        let mut served = Vec::new();
        disk.writes.fetch_add(1, Ordering::SeqCst);
        committer.commit(|| disk.flush(Duration::ZERO), |s| served.push(s)).unwrap();
        assert_eq!(served, [Served { writers: 1 }]);
        assert_eq!(disk.durable.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_writer_returns_before_a_flush_that_covers_its_write() {
        let disk = disk();
        let committer = Arc::new(Committer::new());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (disk, committer) = (Arc::clone(&disk), Arc::clone(&committer));
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let mine = disk.writes.fetch_add(1, Ordering::SeqCst) + 1;
                        committer.commit(|| disk.flush(Duration::from_millis(20)), |_| {}).unwrap();
                        // Every write up to ours was made before a flush that has ended.
                        assert!(disk.durable.load(Ordering::SeqCst) >= mine, "returned before its write was durable");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // 160 writes, with a slow disk, shared far fewer flushes.
        let flushes = disk.flushes.load(Ordering::SeqCst);
        assert!(flushes < 80, "{flushes} flushes for 160 writes");
    }

    #[test]
    fn a_flush_that_panics_fails_its_group_and_the_next_writer_still_commits() {
        let committer = Arc::new(Committer::new());
        let leader = {
            let committer = Arc::clone(&committer);
            std::thread::spawn(move || {
                committer.commit(
                    || {
                        std::thread::sleep(Duration::from_millis(100));
                        panic!("the disk driver fell over")
                    },
                    |_| {},
                )
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        // Joins the next group while the panicking flush runs.
        let follower = {
            let committer = Arc::clone(&committer);
            std::thread::spawn(move || committer.commit(|| Ok(()), |_| {}))
        };
        assert!(leader.join().is_err(), "the leader's panic is its own");
        assert_eq!(follower.join().unwrap(), Ok(()), "the next group was led, not left waiting");
        assert_eq!(committer.commit(|| Ok(()), |_| {}), Ok(()));
    }

    #[test]
    fn a_failed_flush_fails_every_writer_of_its_group_and_no_later_one() {
        let disk = disk();
        disk.fail.store(true, Ordering::SeqCst);
        let committer = Arc::new(Committer::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (disk, committer) = (Arc::clone(&disk), Arc::clone(&committer));
                std::thread::spawn(move || committer.commit(|| disk.flush(Duration::from_millis(50)), |_| {}))
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(outcomes.iter().all(|o| *o == Err("disk full".to_string())), "{outcomes:?}");
        disk.fail.store(false, Ordering::SeqCst);
        assert_eq!(committer.commit(|| disk.flush(Duration::ZERO), |_| {}), Ok(()));
    }
}
