//! Async locks by key: tasks that lock the same key run one at a time, in the
//! order they asked; tasks with different keys never wait for each other. A key
//! takes memory only while someone holds or awaits its lock, so a map of locks
//! over every chat or conversation ever seen does not grow with history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The locks in use, by key, each with how many hold or await it.
type InUse = Arc<Mutex<Keys>>;
type Keys = HashMap<String, (Arc<AsyncMutex<()>>, usize)>;

/// One async lock per key, made on first use and forgotten once nobody holds or
/// awaits it.
#[derive(Default, Clone)]
pub struct KeyedLocks {
    in_use: InUse,
}

/// A key's lock, held: released when dropped (and forgotten if nobody awaits it).
pub struct KeyGuard {
    held: Option<OwnedMutexGuard<()>>,
    _using: Using,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        // The lock first, then the count: a key is never forgotten while held.
        drop(self.held.take());
    }
}

/// One holder or waiter of a key: counted in the map from before it waits until
/// it is dropped, so a waiter that gives up (a cancelled task) is counted out too.
struct Using {
    in_use: InUse,
    key: String,
}

impl KeyedLocks {
    /// No keys in use.
    pub fn new() -> KeyedLocks {
        KeyedLocks::default()
    }

    /// Waits until no one else holds `key`'s lock, then holds it until the guard
    /// is dropped. Dropping this future while it waits gives up the place in line.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let (lock, using) = {
            let mut in_use = map(&self.in_use);
            let (lock, users) = in_use.entry(key.to_string()).or_insert_with(|| (Arc::default(), 0));
            *users += 1;
            (lock.clone(), Using { in_use: self.in_use.clone(), key: key.to_string() })
        };
        KeyGuard { held: Some(lock.lock_owned().await), _using: using }
    }

    /// How many keys are held or awaited now.
    pub fn in_use(&self) -> usize {
        map(&self.in_use).len()
    }
}

impl Drop for Using {
    fn drop(&mut self) {
        let mut in_use = map(&self.in_use);
        if let Some((_, users)) = in_use.get_mut(&self.key) {
            *users -= 1;
            if *users == 0 {
                in_use.remove(&self.key);
            }
        }
    }
}

fn map(in_use: &InUse) -> MutexGuard<'_, Keys> {
    in_use.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_key_is_held_by_one_task_at_a_time_and_other_keys_do_not_wait() {
        let locks = KeyedLocks::new();
        let a = locks.lock("a").await;
        // Another key is free at once.
        let b = tokio::time::timeout(Duration::from_secs(5), locks.lock("b")).await.expect("b is not held");
        // The same key waits until its holder lets go.
        let again = locks.clone();
        let waiter = tokio::spawn(async move { again.lock("a").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a second holder of a key must wait");
        drop(a);
        let a2 = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("a is free").unwrap();
        drop((a2, b));
        assert_eq!(locks.in_use(), 0, "keys nobody holds are forgotten");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_nothing_behind() {
        let locks = KeyedLocks::new();
        let held = locks.lock("k").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), locks.lock("k")).await;
        assert!(gave_up.is_err(), "the key is held");
        assert_eq!(locks.in_use(), 1);
        drop(held);
        assert_eq!(locks.in_use(), 0, "the cancelled waiter is counted out");
        // And the key can be taken again.
        let _k = tokio::time::timeout(Duration::from_secs(5), locks.lock("k")).await.expect("free");
        assert_eq!(locks.in_use(), 1);
    }
}
