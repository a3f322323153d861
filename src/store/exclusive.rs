//! Short sections that one process at a time runs, across every process on a
//! shared store (replicas on one database): a read-modify-write of the agent's
//! memory, the creation of the default agent. Each call claims a lease of its
//! own (a fresh holder id), waits while another process holds it, and releases
//! it after (in the background if the call is dropped or panics); a process
//! that dies inside lets it lapse after [`HOLD_FOR`]. Sections must be short:
//! the lease is not renewed. Names should come from a bounded set (a lease's
//! row is kept). On a store one process owns, the work simply runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{blocking, Claim, Lease, Store, StoreError, StoreResult};

/// How long a section may hold its lease before another process may take it.
const HOLD_FOR: Duration = Duration::from_secs(30);
/// How often a waiting process asks again.
const RETRY: Duration = Duration::from_millis(20);
/// How long a process waits for a section before it gives up with an error.
const WAIT_AT_MOST: Duration = Duration::from_secs(40);

/// Runs `work` while no other process on `store` runs a section named `name`.
pub async fn exclusively<T, Fut>(store: &Arc<dyn Store>, name: &str, work: impl FnOnce() -> Fut) -> StoreResult<T>
where
    Fut: Future<Output = StoreResult<T>>,
{
    if !store.shared() {
        return work().await;
    }
    let holder = format!("section-{}", uuid::Uuid::new_v4().simple());
    let started = tokio::time::Instant::now();
    let lease = loop {
        let (n, h) = (name.to_string(), holder.clone());
        match blocking(store, move |s| s.lease_claim(&n, &h, HOLD_FOR)).await? {
            Claim::Held(lease) => break lease,
            Claim::Taken { .. } if started.elapsed() < WAIT_AT_MOST => tokio::time::sleep(RETRY).await,
            Claim::Taken { .. } => return Err(StoreError::Backend(format!("{name} stayed busy in another process"))),
        }
    };
    let mut held = Held { store: store.clone(), lease: Some(lease) };
    let result = work().await;
    if let Some(lease) = held.lease.take() {
        if let Err(e) = blocking(store, move |s| s.lease_release(&lease)).await {
            tracing::warn!(error = %e, section = %name, "cannot release a section's lease; it lapses by itself");
        }
    }
    result
}

/// A section's lease while its work runs: released in the background when the
/// work is dropped before it ends (a cancelled call, a panic).
struct Held {
    store: Arc<dyn Store>,
    lease: Option<Lease>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else { return };
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                let _ = store.lease_release(&lease);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Two processes sharing one database (two stores on it) never run the same
    /// section at once; different sections do not wait for each other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_process_at_a_time_runs_a_section() {
        let url = switchboard_fakes::postgres::database();
        let replicas = crate::config::ReplicaSettings { enabled: true, ..Default::default() };
        let open = || -> Arc<dyn Store> {
            Arc::new(
                super::super::postgres::PgStore::open(&super::super::postgres::PgOptions {
                    url: url.clone(),
                    pool_size: 4,
                    replicas,
                })
                .unwrap(),
            )
        };
        let (one, two) = (open(), open());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut runs = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let (inside, most) = (inside.clone(), most.clone());
            runs.push(tokio::spawn(async move {
                exclusively(&store, "memory:agent-1", || async {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }));
        }
        for run in runs {
            run.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
        // Another section runs while this one is held.
        let held = exclusively(&one, "memory:agent-1", || async {
            exclusively(&two, "agent:default", || async { Ok(7) }).await
        });
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), held).await.unwrap().unwrap(), 7);
    }
}
