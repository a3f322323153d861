//! Handing events over side by side without reordering a chat: an adapter that
//! reads one connection (Slack's Socket Mode, Discord's Gateway) would otherwise
//! wait for each event's journal write before it reads the next, so the flush of
//! one chat's event held up every other chat. [`Ordered`] runs each event's
//! hand-over on a task of its own, after every earlier one with the same key (a
//! chat) and beside those of other keys, with a bounded number under way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Keys remembered before the finished ones are forgotten.
const FORGET_AFTER: usize = 1024;

/// Tasks in order per key, side by side across keys, at most `limit` at once.
/// One owner (the adapter's read loop) spawns; the tasks run by themselves, so
/// a hand-over under way is never cancelled by the loop ending.
pub struct Ordered {
    /// The last task spawned for each key: it ends (its sender dropped) when that
    /// task does, even by a panic.
    last: HashMap<String, oneshot::Receiver<()>>,
    places: Arc<Semaphore>,
}

impl Ordered {
    /// At most `limit` tasks under way or waiting for their turn (at least one).
    pub fn new(limit: usize) -> Ordered {
        Ordered { last: HashMap::new(), places: Arc::new(Semaphore::new(limit.max(1))) }
    }

    /// Whether another task may be spawned now without waiting: a read loop
    /// reads its next event only then, and meanwhile goes on with its other
    /// work (its own pings, acknowledgements).
    pub fn has_room(&self) -> bool {
        self.places.available_permits() > 0
    }

    /// Returns once a place is free (at once if one is).
    pub async fn room(&self) {
        // Taken and given back at once; never closed while `self` lives.
        let _ = self.places.acquire().await;
    }

    /// Spawns `task` to run after every task spawned before it under `key`,
    /// waiting first for a place if all are taken.
    pub async fn spawn<F>(&mut self, key: String, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let place: OwnedSemaphorePermit = match self.places.clone().acquire_owned().await {
            Ok(place) => place,
            // Never closed: the semaphore lives as long as `self`.
            Err(_) => return,
        };
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
            task.await;
            drop((done, place));
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
        assert!(!ordered.has_room(), "both places taken");
        let third = tokio::time::timeout(Duration::from_millis(50), ordered.spawn("c".into(), noting(&log, "c", None)));
        assert!(third.await.is_err(), "the third waits for a place");
        open_a.send(()).unwrap();
        assert_eq!(until(&log, 1).await, ["a"]);
        tokio::time::timeout(Duration::from_secs(5), ordered.room()).await.expect("a's place is free again");
        assert!(ordered.has_room());
        ordered.spawn("c".into(), noting(&log, "c", None)).await;
        assert_eq!(until(&log, 2).await, ["a", "c"]);
        open_b.send(()).unwrap();
        assert_eq!(until(&log, 3).await, ["a", "c", "b"]);
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
