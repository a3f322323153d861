//! Which conversation a chat talks to: its own (per-chat; a forum topic is its own
//! chat), one shared by everything, or a named conversation an explicit route points
//! to. The mapping is stored, so it survives restarts; `/new` replaces it.

use std::sync::Arc;

use switchboard_channel_core::ChatKey;

use crate::agent::{AgentBackend, AgentError, SessionOptions};
use crate::config::GatewaySettings;
use crate::keyed::KeyedLocks;
use crate::store::{blocking, Store};

const ROUTES: &str = "routes";
const NAMED: &str = "named-conversations";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub agent_id: String,
    pub conversation_id: String,
}

pub struct Router {
    store: Arc<dyn Store>,
    backend: Arc<dyn AgentBackend>,
    settings: GatewaySettings,
    /// Two first messages from one chat must not create two conversations; other
    /// chats do not wait meanwhile (a slow store write holds up one chat only).
    chats: KeyedLocks,
    /// Nor two chats routed to one named conversation create it twice.
    names: KeyedLocks,
}

impl Router {
    pub fn new(store: Arc<dyn Store>, backend: Arc<dyn AgentBackend>, settings: GatewaySettings) -> Router {
        Router { store, backend, settings, chats: KeyedLocks::new(), names: KeyedLocks::new() }
    }

    pub async fn route(&self, chat: &ChatKey) -> Result<Route, AgentError> {
        let _chat = self.chats.lock(&chat.id()).await;
        if let Some(conversation_id) = self.stored(ROUTES, &chat.id()).await? {
            if let Some(route) = existing(&*self.backend, conversation_id).await? {
                return Ok(route);
            }
        }
        let explicit = self.settings.routes.get(&chat.id()).or_else(|| self.settings.routes.get(&chat.chat_id()));
        let route = match explicit {
            Some(name) => self.named(name).await?,
            None if self.settings.shared_conversation => {
                let agent = self.backend.default_agent().await?;
                Route { conversation_id: agent.default_conversation, agent_id: agent.id }
            }
            None => self.fresh().await?,
        };
        self.remember(ROUTES, &chat.id(), &route.conversation_id).await?;
        Ok(route)
    }

    /// `/new`: this chat continues in a fresh conversation.
    pub async fn start_new(&self, chat: &ChatKey) -> Result<Route, AgentError> {
        let _chat = self.chats.lock(&chat.id()).await;
        let route = self.fresh().await?;
        self.remember(ROUTES, &chat.id(), &route.conversation_id).await?;
        Ok(route)
    }

    async fn named(&self, name: &str) -> Result<Route, AgentError> {
        let _name = self.names.lock(name).await;
        if let Some(conversation_id) = self.stored(NAMED, name).await? {
            if let Some(route) = existing(&*self.backend, conversation_id).await? {
                return Ok(route);
            }
        }
        let route = self.fresh().await?;
        self.remember(NAMED, name, &route.conversation_id).await?;
        Ok(route)
    }

    async fn fresh(&self) -> Result<Route, AgentError> {
        let agent = self.backend.default_agent().await?;
        let session = self.backend.create_session(&agent.id, SessionOptions::default()).await?;
        Ok(Route { agent_id: agent.id, conversation_id: session.conversation_id().to_string() })
    }

    async fn stored(&self, space: &'static str, key: &str) -> Result<Option<String>, AgentError> {
        let key = key.to_string();
        let found = crate::store::read(&self.store, move |s| s.kv_get(space, &key)).await?;
        Ok(found.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn remember(&self, space: &'static str, key: &str, conversation_id: &str) -> Result<(), AgentError> {
        let (key, value) = (key.to_string(), conversation_id.to_string());
        Ok(blocking(&self.store, move |s| s.kv_put(space, &key, value.as_bytes())).await?)
    }
}

/// The stored conversation, `None` only if it no longer exists (deleted): any other
/// failure is an error, never a reason to start over and lose the history.
async fn existing(backend: &dyn AgentBackend, conversation_id: String) -> Result<Option<Route>, AgentError> {
    match backend.conversation(&conversation_id).await {
        Ok(c) => Ok(Some(Route { agent_id: c.agent_id, conversation_id })),
        Err(AgentError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::agent::embedded::EmbeddedBackend;
    use crate::config::{AgentSettings, Settings};
    use crate::store::SqliteStore;

    fn chat(id: &str) -> ChatKey {
        ChatKey { channel: "fake".into(), account: "bot".into(), chat: id.into(), thread: None }
    }

    /// A chat whose first message waits on the store (its new conversation's write
    /// is stuck in its flush) holds up no other chat: routing was one lock for the
    /// whole daemon, so every chat waited for the slowest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chat_waiting_on_the_store_does_not_hold_up_another() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(dir.path(), 8).unwrap());
        let store: Arc<dyn Store> = sqlite.clone();
        let defaults = Settings::default();
        let agent = AgentSettings { workdir: dir.path().join("work"), ..defaults.agent.clone() };
        let settings = Settings { data_dir: dir.path().to_path_buf(), agent, ..defaults };
        let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
        let router = Arc::new(Router::new(store, backend, settings.gateway));
        let known = router.route(&chat("known")).await.unwrap();

        // The next flush waits until it is let go.
        let (entered, has_entered) = mpsc::channel();
        let (let_go, wait) = mpsc::channel::<()>();
        let (armed, wait) = (AtomicBool::new(true), Mutex::new(wait));
        sqlite.before_flush(Some(Box::new(move || {
            if armed.swap(false, Ordering::SeqCst) {
                let _ = entered.send(());
                let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
            Ok(())
        })));
        let newcomer = tokio::spawn({
            let router = router.clone();
            async move { router.route(&chat("newcomer")).await }
        });
        tokio::task::spawn_blocking(move || has_entered.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("the newcomer's first write reached its flush");

        let again = tokio::time::timeout(Duration::from_secs(5), router.route(&chat("known")))
            .await
            .expect("another chat is routed while the newcomer waits on the store")
            .unwrap();
        assert_eq!(again, known);
        assert!(!newcomer.is_finished(), "the newcomer is still waiting for its flush");
        let_go.send(()).unwrap();
        let fresh = newcomer.await.unwrap().unwrap();
        assert_ne!(fresh.conversation_id, known.conversation_id);
        assert_eq!(router.route(&chat("newcomer")).await.unwrap(), fresh, "routed once, remembered");
    }
}
