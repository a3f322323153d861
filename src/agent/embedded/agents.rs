//! Agent records as last read here, so a turn does not read its agent from the
//! store again and again (three times a message before: the router's default
//! agent, a new conversation's, the turn's own). Only in a process alone on its
//! store, where every change to an agent goes through this backend; beside
//! replicas another process may change one, and every read goes to the store.
//!
//! A change forgets the record (the next read fills it from the store) rather
//! than putting its own copy, so two changes at once cannot leave the one that
//! lost the race in memory. A read that began before a change may not fill in
//! what it read: every change counts one more generation, and a read fills only
//! if none was counted since it began.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::{AgentRecord, Store, StoreResult};

/// The agents this process knows (one per backend, in its shared state).
pub(super) struct Agents {
    store: Arc<dyn Store>,
    /// Whether records are kept (alone on the store).
    keep: bool,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    /// Changes counted so far.
    generation: u64,
    records: HashMap<String, AgentRecord>,
}

impl Agents {
    pub(super) fn new(store: Arc<dyn Store>) -> Agents {
        let keep = !store.shared();
        Agents { store, keep, known: Mutex::default() }
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent `id`, `None` if there is none.
    pub(super) async fn get(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        let began = {
            let known = self.known();
            if let Some(record) = known.records.get(id) {
                return Ok(Some(record.clone()));
            }
            known.generation
        };
        let owned = id.to_string();
        let found = crate::store::read(&self.store, move |s| s.agent(&owned)).await?;
        if let Some(record) = &found {
            self.fill(began, record);
        }
        Ok(found)
    }

    /// Keeps `record`, read in generation `began`, unless a change was counted since.
    fn fill(&self, began: u64, record: &AgentRecord) {
        let mut known = self.known();
        if self.keep && known.generation == began {
            known.records.insert(record.id.clone(), record.clone());
        }
    }

    /// Forgets agent `id`: call after every write of it (put or delete) has ended.
    pub(super) fn changed(&self, id: &str) {
        let mut known = self.known();
        known.generation += 1;
        known.records.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, model: &str) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            name: "a".into(),
            model: Some(model.into()),
            system_prompt: crate::store::SystemPrompt::from_setting("default", ""),
            default_conversation: format!("conv-of-{id}"),
            created_at: 1,
        }
    }

    /// A read that began before a change and ends after it does not keep what it
    /// read (the record as it was before the change).
    #[test]
    fn a_read_overtaken_by_a_change_keeps_nothing() {
        let store = crate::store::test_backends().remove(0).store;
        let agents = Agents::new(store);
        let began = agents.known().generation;
        agents.changed("a");
        agents.fill(began, &record("a", "old"));
        assert!(agents.known().records.is_empty());
        // One that began after it does.
        let began = agents.known().generation;
        agents.fill(began, &record("a", "new"));
        assert_eq!(agents.known().records["a"].model.as_deref(), Some("new"));
        agents.changed("a");
        assert!(agents.known().records.is_empty(), "a change forgets the record");
    }

    /// Reads come from memory once filled, and a change is seen by the next read.
    #[tokio::test]
    async fn a_change_is_read_back_from_the_store() {
        let backend = crate::store::test_backends().remove(0);
        let store = backend.store.clone();
        store.put_agent(&record("a", "first")).unwrap();
        let agents = Agents::new(store.clone());
        assert_eq!(agents.get("a").await.unwrap().unwrap().model.as_deref(), Some("first"));
        store.put_agent(&record("a", "second")).unwrap();
        assert_eq!(
            agents.get("a").await.unwrap().unwrap().model.as_deref(),
            Some("first"),
            "read from memory (a change made behind its back is not seen)"
        );
        agents.changed("a");
        assert_eq!(agents.get("a").await.unwrap().unwrap().model.as_deref(), Some("second"));
        store.delete_agent("a").unwrap();
        agents.changed("a");
        assert!(agents.get("a").await.unwrap().is_none());
    }
}
