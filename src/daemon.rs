//! The daemon (`switchboard serve`) as a library: builds every channel whose
//! section turns it on, starts the gateway over them and the operator's control
//! socket, and stops them again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use switchboard_channel_core::ChannelDescriptor;
use tokio::task::JoinHandle;

use crate::agent::AgentBackend;
use crate::config::Settings;
use crate::control::{self, Answer, Handler, Peer, Request};
use crate::gateway::{ChannelEntry, Gateway, Operator, COMMANDS};
use crate::server::Server;
use crate::store::{ApprovalRecord, Store};
use crate::wire::Engine;

/// A running daemon.
pub struct Daemon {
    gateway: Arc<Gateway>,
    control: JoinHandle<()>,
    /// The operator's HTTP endpoints, when `[server] listen` is set.
    server: Option<Server>,
    data_dir: PathBuf,
    /// How long a stop waits for running turns and undelivered replies.
    stop_grace: std::time::Duration,
}

/// What the daemon runs on.
pub struct Parts {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub backend: Arc<dyn AgentBackend>,
    /// Approval requests that expired while no daemon ran (their prompts are updated).
    pub expired: Vec<ApprovalRecord>,
}

impl Daemon {
    /// Starts every enabled channel of `parts.settings` (`registry` says how to
    /// turn each on when none is). Fails with a message naming the channel.
    pub async fn start(parts: Parts, registry: &[ChannelDescriptor]) -> anyhow::Result<Daemon> {
        let mut entries = Vec::new();
        for section in parts.settings.enabled_channels() {
            let channel = section.settings.build(COMMANDS).with_context(|| format!("channel {}", section.name))?;
            entries.push(ChannelEntry { channel, common: section.settings.common().clone() });
        }
        if entries.is_empty() {
            let hints: Vec<String> = registry.iter().map(|c| format!("{}: {}", c.name, c.enable_hint)).collect();
            anyhow::bail!("no channel is configured; to turn one on, {}", hints.join("; or "));
        }
        let engine = Engine::new(parts.backend.clone(), parts.store.clone(), parts.settings.clone());
        let gateway = Arc::new(Gateway::new(parts.backend, parts.store, &parts.settings, entries));
        // Listening first: /healthz answers while channels start (which may take a
        // while against a slow platform), and /readyz says they have not yet.
        let server = match parts.settings.server.listen {
            Some(listen) => Some(Server::start(listen, gateway.clone()).await?),
            None => None,
        };
        gateway.start(&parts.expired).await?;
        // The operator's commands and SDK sessions reach the running daemon through this socket.
        let handler = Arc::new(DaemonHandler { operator: gateway.operator(), gateway: gateway.clone() });
        let control = control::serve(&parts.settings.data_dir, handler, Some(engine))
            .context("cannot open the control socket in the data directory")?;
        let stop_grace = std::time::Duration::from_secs(parts.settings.gateway.stop_grace_secs);
        Ok(Daemon { gateway, control, server, data_dir: parts.settings.data_dir, stop_grace })
    }

    /// Each channel's name and health line.
    pub fn statuses(&self) -> Vec<(String, String)> {
        self.gateway.statuses()
    }

    /// Whether the store answers and every channel receives.
    pub async fn readiness(&self) -> crate::gateway::Readiness {
        self.gateway.readiness().await
    }

    /// The counts and ages `/metrics` shows as gauges.
    pub async fn snapshot(&self) -> crate::metrics::Snapshot {
        self.gateway.snapshot().await
    }

    /// Closes the endpoints and the control socket, then stops the gateway
    /// gracefully within `[gateway] stop_grace_secs` (see [`Gateway::stop`]).
    pub async fn stop(&self) {
        if let Some(server) = &self.server {
            server.stop();
        }
        self.control.abort();
        let _ = std::fs::remove_file(control::socket_path(&self.data_dir));
        self.gateway.stop(self.stop_grace).await;
    }
}

/// The control socket's handler while `serve` runs: the status from the whole
/// gateway, everything else from its operator.
struct DaemonHandler {
    operator: Arc<Operator>,
    gateway: Arc<Gateway>,
}

#[async_trait]
impl Handler for DaemonHandler {
    async fn handle(&self, request: Request, peer: &Peer) -> Answer {
        match request {
            Request::Status => {
                let (report, ready) = self.gateway.status_report().await;
                // Non-zero when not ready, for scripts.
                Answer { stdout: report, stderr: String::new(), code: if ready { 0 } else { 1 } }
            }
            other => self.operator.handle(other, peer).await,
        }
    }
}
