//! The daemon (`switchboard serve`) as a library: builds every channel whose
//! section turns it on, starts the gateway over them and the operator's control
//! socket, and stops them again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use switchboard_channel_core::ChannelDescriptor;
use tokio::task::JoinHandle;

use crate::agent::AgentBackend;
use crate::config::Settings;
use crate::control;
use crate::gateway::{ChannelEntry, Gateway, COMMANDS};
use crate::store::{ApprovalRecord, Store};
use crate::wire::Engine;

/// A running daemon.
pub struct Daemon {
    gateway: Gateway,
    control: JoinHandle<()>,
    data_dir: PathBuf,
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
        let gateway = Gateway::new(parts.backend, parts.store, &parts.settings, entries);
        gateway.start(&parts.expired).await?;
        // The operator's commands and SDK sessions reach the running daemon through this socket.
        let control = control::serve(&parts.settings.data_dir, gateway.operator(), Some(engine))
            .context("cannot open the control socket in the data directory")?;
        Ok(Daemon { gateway, control, data_dir: parts.settings.data_dir })
    }

    /// Each channel's name and health line.
    pub fn statuses(&self) -> Vec<(String, String)> {
        self.gateway.statuses()
    }

    /// Stops the channels and closes the control socket.
    pub async fn stop(self) {
        self.control.abort();
        let _ = std::fs::remove_file(control::socket_path(&self.data_dir));
        self.gateway.stop().await;
    }
}
