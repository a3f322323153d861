//! The SQLite store's own two threads. The runner takes the store work that async
//! callers hand over ([`crate::store::blocking`]) and runs it back to back, each
//! write staged in the open transaction without a flush of its own; the flusher
//! then makes a run's writes durable with one flush (shared with any other writer
//! of that moment) and only then releases the run's answers. The runner goes on
//! with the next work while the flusher waits for the disk, so a slow flush delays
//! answers, not the work behind it.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::Core;
use crate::store::{Job, Settle, StoreError};

/// The most jobs run before their flush is asked for.
const RUN: usize = 256;

thread_local! {
    /// The store (its core's address) whose work this thread is running, and
    /// whether that work wrote.
    static RUNNING: Cell<(usize, bool)> = const { Cell::new((0, false)) };
}

fn address(core: &Core) -> usize {
    core as *const Core as usize
}

/// Whether this thread is running work for `core` (then its writes are made
/// durable by the flusher, after the run).
pub(super) fn running_for(core: &Core) -> bool {
    RUNNING.get().0 == address(core)
}

/// Notes that the work being run wrote something.
pub(super) fn wrote() {
    RUNNING.with(|running| running.set((running.get().0, true)));
}

/// The two threads of one store.
pub(super) struct Threads {
    runner: JoinHandle<()>,
    flusher: JoinHandle<()>,
}

impl Threads {
    /// Waits for both to end (they do once the job queue is closed and drained);
    /// called on one of them (the store's last handle dropped by its own work),
    /// leaves them to end by themselves.
    pub(super) fn join(self) {
        let me = std::thread::current().id();
        if self.runner.thread().id() == me || self.flusher.thread().id() == me {
            return;
        }
        let _ = self.runner.join();
        let _ = self.flusher.join();
    }
}

/// Starts the threads of `core`; where to send its jobs.
pub(super) fn start(core: &Arc<Core>) -> std::io::Result<(mpsc::Sender<Job>, Threads)> {
    let (jobs, taken) = mpsc::channel::<Job>();
    let (runs, to_flush) = mpsc::channel::<Vec<Settle>>();
    let waiting = Arc::new(AtomicUsize::new(0));
    let flusher = {
        let (core, waiting) = (Arc::clone(core), Arc::clone(&waiting));
        std::thread::Builder::new().name("store-flush".into()).spawn(move || flush(&core, &to_flush, &waiting))?
    };
    let runner = {
        let core = Arc::clone(core);
        std::thread::Builder::new().name("store".into()).spawn(move || run(&core, &taken, &runs, &waiting))?
    };
    Ok((jobs, Threads { runner, flusher }))
}

/// Runs jobs as they come, up to [`RUN`] at a time, and hands each run's answers
/// to the flusher. A run that wrote nothing is answered at once, unless writes
/// still wait for their flush (an earlier run's, or another thread's, staged in
/// the open transaction): this one may have read them.
fn run(core: &Core, jobs: &mpsc::Receiver<Job>, flusher: &mpsc::Sender<Vec<Settle>>, waiting: &AtomicUsize) {
    while let Ok(first) = jobs.recv() {
        RUNNING.set((address(core), false));
        let mut settles = Vec::new();
        for job in std::iter::once(first).chain(jobs.try_iter().take(RUN - 1)) {
            // A job that panicked dropped its answer: its caller hears that the
            // store's work failed (a write it left unfinished either changed
            // nothing or ended the store's writes: see `Core::stage`).
            if let Ok(settle) = catch_unwind(AssertUnwindSafe(job)) {
                settles.push(settle);
            }
        }
        let (_, wrote) = RUNNING.replace((0, false));
        if !wrote && waiting.load(Ordering::SeqCst) == 0 && !core.conn().staged {
            settles.into_iter().for_each(|settle| settle(Ok(())));
            continue;
        }
        waiting.fetch_add(1, Ordering::SeqCst);
        if let Err(unsent) = flusher.send(settles) {
            waiting.fetch_sub(1, Ordering::SeqCst);
            let why = "the store's flusher has stopped";
            unsent.0.into_iter().for_each(|settle| settle(Err(StoreError::Backend(why.into()))));
        }
    }
}

/// Flushes once for every run waiting, then releases their answers.
fn flush(core: &Core, runs: &mpsc::Receiver<Vec<Settle>>, waiting: &AtomicUsize) {
    while let Ok(first) = runs.recv() {
        let (mut settles, mut count) = (first, 1);
        for more in runs.try_iter() {
            settles.extend(more);
            count += 1;
        }
        let durable = match catch_unwind(AssertUnwindSafe(|| core.commit())) {
            Ok(outcome) => outcome.map_err(|e| e.to_string()),
            Err(_) => {
                core.broken.store(true, Ordering::SeqCst);
                Err(super::BROKEN.to_string())
            }
        };
        for settle in settles {
            settle(durable.clone().map_err(StoreError::Backend));
        }
        waiting.fetch_sub(count, Ordering::SeqCst);
    }
}
