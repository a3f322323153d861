//! What most commands need: the loaded settings, the opened store and the backend.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{AgentBackend, AgentError, SessionOptions};
use switchboard::config::{self, ConfigSource, Settings};
use switchboard::policy::Tier;
use switchboard::store::{ApprovalRecord, SledStore, Store};

/// The chat and sender id of the terminal.
pub const CONSOLE: &str = "console";

pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub backend: Arc<EmbeddedBackend>,
    /// Approval requests that expired while no switchboard ran (now denied).
    pub expired: Vec<ApprovalRecord>,
}

impl App {
    /// Loads the configuration, opens the store and resolves approvals that expired
    /// while no switchboard was running.
    pub async fn open(config_path: Option<&Path>) -> anyhow::Result<App> {
        let loaded = config::load(&ConfigSource::from_process(config_path))?;
        let settings = loaded.settings;
        let store: Arc<dyn Store> = Arc::new(SledStore::open_sized(&settings.data_dir, settings.store.cache_mb)?);
        let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
        let expired = backend.recover().await?;
        if !expired.is_empty() {
            eprintln!(
                "{} approval request(s) expired while switchboard was not running; they were denied.",
                expired.len()
            );
        }
        Ok(App { settings, store, backend, expired })
    }

    /// The console's identity in chats and approvals.
    pub fn console_session() -> SessionOptions {
        SessionOptions {
            chat: Some(CONSOLE.into()),
            sender: Some(CONSOLE.into()),
            tier: Tier::Admin,
            ..SessionOptions::default()
        }
    }

    /// `--agent ID`, or the default agent (created from `[agent]` on first use).
    pub async fn agent_id(&self, requested: Option<&str>) -> anyhow::Result<String> {
        match requested {
            Some(id) => {
                self.backend.agent(id).await.map_err(not_found_hint)?;
                Ok(id.to_string())
            }
            None => Ok(self.backend.default_agent().await.context("cannot set up the default agent")?.id),
        }
    }
}

/// Adds where to look when an id is wrong.
pub fn not_found_hint(e: AgentError) -> anyhow::Error {
    match &e {
        AgentError::NotFound { .. } => anyhow::anyhow!(switchboard::admin::hinted(e)),
        _ => e.into(),
    }
}
