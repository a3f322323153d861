//! What most commands need: the loaded settings, the opened store and the backend.

use std::path::Path;
use std::sync::Arc;

use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{AgentBackend, AgentError};
use switchboard::config::{self, ConfigSource, Settings};
use switchboard::store::{ApprovalRecord, Store};

pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub backend: Arc<EmbeddedBackend>,
    /// Approval requests that expired while no switchboard ran (now denied).
    pub expired: Vec<ApprovalRecord>,
}

impl App {
    /// Loads the configuration, opens the store and resolves approvals that expired
    /// while no switchboard was running. Only `serve` joins replicas: any other
    /// command takes the store for itself, so beside running replicas it is
    /// refused (and goes through a local replica's control socket instead).
    pub async fn open(config_path: Option<&Path>) -> anyhow::Result<App> {
        App::open_as(config_path, false).await
    }

    /// As [`App::open`], for `serve`: as a replica when configured so.
    pub async fn open_serving(config_path: Option<&Path>) -> anyhow::Result<App> {
        App::open_as(config_path, true).await
    }

    async fn open_as(config_path: Option<&Path>, serving: bool) -> anyhow::Result<App> {
        let loaded = config::load(&ConfigSource::from_process(config_path))?;
        let mut settings = loaded.settings;
        if !serving {
            settings.store.postgres.replicas.enabled = false;
        }
        super::logging::set_format(settings.log.format);
        let store: Arc<dyn Store> = switchboard::store::open(&settings)?;
        let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
        let expired = backend.recover().await?;
        if !expired.is_empty() && settings.log.format == config::LogFormat::Text {
            eprintln!(
                "{} approval request(s) expired while switchboard was not running; they were denied.",
                expired.len()
            );
        }
        Ok(App { settings, store, backend, expired })
    }
}

/// Adds where to look when an id is wrong.
pub fn not_found_hint(e: AgentError) -> anyhow::Error {
    match &e {
        AgentError::NotFound { .. } => anyhow::anyhow!(switchboard::admin::hinted(e)),
        _ => e.into(),
    }
}
