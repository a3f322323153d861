//! Which conversation a chat talks to: its own (per-chat; a forum topic is its own
//! chat), one shared by everything, or a named conversation an explicit route points
//! to. The mapping is stored, so it survives restarts; `/new` replaces it.

use std::sync::Arc;

use switchboard_channel_core::ChatKey;

use crate::agent::{AgentBackend, AgentError, SessionOptions};
use crate::config::GatewaySettings;
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
    /// Two first messages from one chat must not create two conversations.
    lock: tokio::sync::Mutex<()>,
}

impl Router {
    pub fn new(store: Arc<dyn Store>, backend: Arc<dyn AgentBackend>, settings: GatewaySettings) -> Router {
        Router { store, backend, settings, lock: tokio::sync::Mutex::new(()) }
    }

    pub async fn route(&self, chat: &ChatKey) -> Result<Route, AgentError> {
        let _guard = self.lock.lock().await;
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
        let _guard = self.lock.lock().await;
        let route = self.fresh().await?;
        self.remember(ROUTES, &chat.id(), &route.conversation_id).await?;
        Ok(route)
    }

    async fn named(&self, name: &str) -> Result<Route, AgentError> {
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
        let found = blocking(&self.store, move |s| s.kv_get(space, &key)).await?;
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
