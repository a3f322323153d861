//! Serial lanes: jobs with the same key run one at a time in the order they were
//! pushed, each key on its own worker task; different keys run concurrently. A
//! worker that has been idle for a while goes away. The gateway keeps one set of
//! lanes per chat (judging events in arrival order) and one per conversation
//! (one turn at a time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;

/// How long an idle conversation's worker waits for more before it goes away.
/// Short: kept a minute, the workers of every conversation active in that
/// minute added up to memory that the allocator then kept (about 12 MiB at
/// 10,000 conversations); ending at once costs a new worker per message in a
/// burst (a quarter of the throughput in the benchmark).
pub const CONVERSATION_IDLE: Duration = Duration::from_secs(2);
/// A chat's events are judged in milliseconds: its worker need not linger.
pub const CHAT_IDLE: Duration = Duration::from_secs(2);

type Job = BoxFuture<'static, ()>;

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
}

#[derive(Clone)]
pub struct Lanes {
    lanes: Arc<Mutex<HashMap<String, Lane>>>,
    idle: Duration,
}

impl Lanes {
    /// Lanes whose workers go away after `idle` without work.
    pub fn new(idle: Duration) -> Lanes {
        Lanes { lanes: Arc::default(), idle }
    }

    /// Runs `job` after every job pushed before it under `key`.
    pub fn push(&self, key: &str, job: Job) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = lanes.entry(key.to_string()).or_insert_with(|| self.spawn_lane(key));
        // The worker only exits while holding this lock with an empty queue, so the
        // receiver is alive here.
        let _ = lane.tx.send(job);
    }

    fn spawn_lane(&self, key: &str) -> Lane {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let (lanes, key, idle) = (self.lanes.clone(), key.to_string(), self.idle);
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(idle, rx.recv()).await {
                    Ok(Some(job)) => {
                        // A job that panics must not take the conversation's queue with it.
                        if AssertUnwindSafe(job).catch_unwind().await.is_err() {
                            tracing::error!(lane = %key, "a queued job panicked");
                        }
                    }
                    Ok(None) => return,
                    Err(_) => {
                        let mut map = lanes.lock().unwrap_or_else(|p| p.into_inner());
                        if rx.is_empty() {
                            map.remove(&key);
                            return;
                        }
                    }
                }
            }
        });
        Lane { tx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_runs_in_order_others_concurrently() {
        let queues = Lanes::new(CONVERSATION_IDLE);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let l = log.clone();
        queues.push(
            "a",
            Box::pin(async move {
                let _ = hold.await;
                l.lock().unwrap().push("a1");
            }),
        );
        let l = log.clone();
        queues.push("a", Box::pin(async move { l.lock().unwrap().push("a2") }));
        let l = log.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        queues.push(
            "b",
            Box::pin(async move {
                l.lock().unwrap().push("b1");
                let _ = done_tx.send(());
            }),
        );
        done_rx.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["b1"], "b is not stuck behind a");
        // A panicking job does not stop the ones after it.
        queues.push("a", Box::pin(async { panic!("boom") }));
        let l = log.clone();
        let (last_tx, last_rx) = tokio::sync::oneshot::channel();
        queues.push(
            "a",
            Box::pin(async move {
                l.lock().unwrap().push("a3");
                let _ = last_tx.send(());
            }),
        );
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), last_rx).await.unwrap().unwrap();
        assert_eq!(*log.lock().unwrap(), ["b1", "a1", "a2", "a3"]);
    }
}
