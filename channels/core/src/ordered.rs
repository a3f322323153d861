//! Handing events over side by side without reordering a chat: an adapter that
//! reads one connection (Slack's Socket Mode, Discord's Gateway) would otherwise
//! wait for each event's journal write before it reads the next, so the flush of
//! one chat's event held up every other chat. [`Ordered`] runs each event's
//! hand-over on a task of its own, after every earlier one with the same key (a
//! chat) and beside those of other keys, with a bounded number under way and a
//! larger bound on those waiting for their turn: a chat whose events pile up
//! waits in line without taking the places other chats' events run in.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Keys remembered before the finished ones are forgotten.
const FORGET_AFTER: usize = 1024;

/// How many tasks may be spawned and not yet ended for each one under way.
pub const HELD_PER_RUNNING: usize = 8;

/// Tasks in order per key, side by side across keys, at most `limit` under way
/// at once and [`HELD_PER_RUNNING`] times as many spawned and not yet ended.
/// One owner (the adapter's read loop) spawns; the tasks run by themselves, so
/// a hand-over under way is never cancelled by the loop ending.
pub struct Ordered {
    /// The last task spawned for each key: it ends (its sender dropped) when that
    /// task does, even by a panic.
    last: HashMap<String, oneshot::Receiver<()>>,
    /// Tasks spawned and not yet ended, waiting for their turn or under way.
    held: Arc<Semaphore>,
    /// Tasks under way: each past every earlier task of its key, so one key
    /// takes at most one of these, however many of its tasks wait.
    running: Arc<Semaphore>,
}

impl Ordered {
    /// At most `limit` tasks under way (at least one), and [`HELD_PER_RUNNING`]
    /// times as many spawned and not yet ended.
    pub fn new(limit: usize) -> Ordered {
        let limit = limit.max(1);
        Ordered {
            last: HashMap::new(),
            held: Arc::new(Semaphore::new(limit * HELD_PER_RUNNING)),
            running: Arc::new(Semaphore::new(limit)),
        }
    }

    /// Whether another task may be spawned now without waiting: a read loop
    /// reads its next event only then, and meanwhile goes on with its other
    /// work (its own pings, acknowledgements).
    pub fn has_room(&self) -> bool {
        self.held.available_permits() > 0
    }

    /// Returns once another task may be spawned (at once if one may).
    pub async fn room(&self) {
        // Taken and given back at once; never closed while `self` lives.
        let _ = self.held.acquire().await;
    }

    /// Spawns `task` to run after every task spawned before it under `key`,
    /// once a place to run is free; waits first while as many tasks as may be
    /// held are spawned and not yet ended.
    pub async fn spawn<F>(&mut self, key: String, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let held: OwnedSemaphorePermit = match self.held.clone().acquire_owned().await {
            Ok(held) => held,
            // Never closed: the semaphore lives as long as `self`.
            Err(_) => return,
        };
        let running = self.running.clone();
        if self.last.len() >= FORGET_AFTER {
            self.last.retain(|_, before| matches!(before.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        }
        let (done, finished) = oneshot::channel::<()>();
        let before = self.last.insert(key, finished);
        tokio::spawn(async move {
            if let Some(before) = before {
                // Err once the earlier task ended, however it ended.
                let _ = before.await;
            }
            // Never closed: the semaphore lives as long as an `Ordered` or a task.
            let place = running.acquire_owned().await.ok();
            task.await;
            drop((done, place, held));
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A task that waits for `gate` (if any), then notes `name`.
    fn noting(
        log: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
        gate: Option<oneshot::Receiver<()>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let log = log.clone();
        async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            log.lock().unwrap().push(name);
        }
    }

    async fn until(log: &Arc<Mutex<Vec<&'static str>>>, count: usize) -> Vec<&'static str> {
        for _ in 0..500 {
            if log.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        log.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn one_key_in_order_other_keys_beside_it() {
        let mut ordered = Ordered::new(8);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = oneshot::channel();
        ordered.spawn("a".into(), noting(&log, "a1", Some(gate))).await;
        ordered.spawn("a".into(), noting(&log, "a2", None)).await;
        ordered.spawn("b".into(), noting(&log, "b1", None)).await;
        assert_eq!(until(&log, 1).await, ["b1"], "b is not held up by a's first task");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*log.lock().unwrap(), ["b1"], "a2 waits for a1");
        open.send(()).unwrap();
        assert_eq!(until(&log, 3).await, ["b1", "a1", "a2"]);
    }

    #[tokio::test]
    async fn a_task_that_panics_does_not_hold_up_its_key() {
        let mut ordered = Ordered::new(8);
        let log = Arc::new(Mutex::new(Vec::new()));
        ordered.spawn("a".into(), async { panic!("a hand-over failed") }).await;
        ordered.spawn("a".into(), noting(&log, "a2", None)).await;
        assert_eq!(until(&log, 1).await, ["a2"]);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_are_under_way() {
        let mut ordered = Ordered::new(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open_a, gate_a) = oneshot::channel();
        let (open_b, gate_b) = oneshot::channel();
        ordered.spawn("a".into(), noting(&log, "a", Some(gate_a))).await;
        ordered.spawn("b".into(), noting(&log, "b", Some(gate_b))).await;
        // Spawned at once (it may wait), but not under way beside the two.
        ordered.spawn("c".into(), noting(&log, "c", None)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(log.lock().unwrap().is_empty(), "c waits for a place to run");
        open_a.send(()).unwrap();
        assert_eq!(until(&log, 2).await, ["a", "c"]);
        open_b.send(()).unwrap();
        assert_eq!(until(&log, 3).await, ["a", "c", "b"]);
    }

    /// One chat whose events pile up (a flood in one channel) waits in line
    /// without taking the places: another chat's event runs beside it at once.
    #[tokio::test]
    async fn a_key_whose_tasks_pile_up_takes_one_place() {
        let mut ordered = Ordered::new(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = oneshot::channel();
        let spawning = async {
            ordered.spawn("flood".into(), noting(&log, "flood 1", Some(gate))).await;
            for _ in 2..=5 {
                ordered.spawn("flood".into(), noting(&log, "flood n", None)).await;
            }
            ordered.spawn("b".into(), noting(&log, "b", None)).await;
            ordered.spawn("c".into(), noting(&log, "c", None)).await;
        };
        tokio::time::timeout(Duration::from_secs(2), spawning).await.expect("every one spawned without waiting");
        assert_eq!(until(&log, 2).await, ["b", "c"], "neither waits behind the flood");
        open.send(()).unwrap();
        assert_eq!(until(&log, 7).await.len(), 7);
    }

    /// Spawned and not yet ended: at most the held bound, then the read loop waits.
    #[tokio::test]
    async fn no_more_than_the_held_bound_are_spawned_and_not_ended() {
        let mut ordered = Ordered::new(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = oneshot::channel();
        ordered.spawn("a".into(), noting(&log, "first", Some(gate))).await;
        for _ in 1..HELD_PER_RUNNING {
            ordered.spawn("a".into(), noting(&log, "later", None)).await;
        }
        assert!(!ordered.has_room(), "every held place taken");
        let more = tokio::time::timeout(Duration::from_millis(50), ordered.spawn("b".into(), noting(&log, "b", None)));
        assert!(more.await.is_err(), "one more waits for a held place");
        open.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), ordered.room()).await.expect("places free again");
        assert!(ordered.has_room());
        ordered.spawn("b".into(), noting(&log, "b", None)).await;
        assert_eq!(until(&log, HELD_PER_RUNNING + 1).await.len(), HELD_PER_RUNNING + 1);
    }

    #[tokio::test]
    async fn finished_keys_are_forgotten_and_waiting_ones_kept() {
        let mut ordered = Ordered::new(FORGET_AFTER + 8);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = oneshot::channel();
        ordered.spawn("held".into(), noting(&log, "held", Some(gate))).await;
        // Many chats, each heard from once: what is kept stays bounded.
        for n in 0..3 * FORGET_AFTER {
            ordered.spawn(format!("k{n}"), async {}).await;
            assert!(ordered.last.len() <= FORGET_AFTER, "{} keys kept", ordered.last.len());
            if n % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        ordered.spawn("held".into(), noting(&log, "after", None)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(log.lock().unwrap().is_empty(), "the held key's second task still waits for its first");
        open.send(()).unwrap();
        assert_eq!(until(&log, 2).await, ["held", "after"]);
    }
}
