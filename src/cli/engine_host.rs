//! `switchboard engine-host` (not listed in the help): the background engine an
//! SDK process starts when no switchboard holds the data directory. It serves SDK
//! sessions and the operator's read-only commands on the control socket, and exits
//! once it has had no session for `[engine] idle_secs`, or on SIGTERM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard::agent::AgentBackend;
use switchboard::control::{
    self, render_approval, render_approvals, render_audit, render_grants, Answer, Handler, Peer, Request,
};
use switchboard::store::{blocking, render_sizes, Store};
use switchboard::wire::Engine;

use super::app::App;

/// How many of the store's largest parts `check` lists.
const LARGEST_SHOWN: usize = 6;

pub async fn run(app: App) -> anyhow::Result<i32> {
    let data_dir = app.settings.data_dir.clone();
    let idle = Duration::from_secs(app.settings.engine.idle_secs);
    let backend: Arc<dyn AgentBackend> = app.backend.clone();
    let engine = Engine::new(backend.clone(), app.store.clone(), app.settings.clone());
    let handler = Arc::new(HostHandler {
        backend,
        store: app.store.clone(),
        secrets: app.settings.secrets(),
        idle_secs: idle.as_secs(),
        default_model: app.settings.llm.model.clone(),
    });
    let listener = control::serve(&data_dir, handler, Some(engine.clone()))?;
    tracing::info!(pid = std::process::id(), "the SDK engine is serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = term.recv() => break,
        }
        if engine.idle_for(started).is_some_and(|quiet| quiet >= idle) {
            break;
        }
    }
    // No new connections; the ones that got in just before finish first.
    listener.abort();
    let _ = std::fs::remove_file(control::socket_path(&data_dir));
    // A turn's writes are stored as it goes: after a while, stop anyway.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.idle_for(started).is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!("the SDK engine stopped");
    Ok(0)
}

/// The operator's commands while the background engine holds the data directory:
/// what only reads, and revoking a grant. Decisions and pairing need the daemon.
struct HostHandler {
    backend: Arc<dyn AgentBackend>,
    store: Arc<dyn Store>,
    secrets: Vec<String>,
    /// `[engine] idle_secs`, for the refusal's wording.
    idle_secs: u64,
    /// `[llm] model`, shown for agents that follow it.
    default_model: String,
}

#[async_trait]
impl Handler for HostHandler {
    async fn handle(&self, request: Request, _peer: &Peer) -> Answer {
        let failed = |e: switchboard::agent::AgentError| Answer::failed(e.to_string());
        match request {
            Request::ApprovalsList { all } => {
                self.backend.approvals().await.map(|a| Answer::ok(render_approvals(&a, all))).unwrap_or_else(failed)
            }
            Request::ApprovalsAudit => {
                self.backend.audit_log().await.map(|r| Answer::ok(render_audit(&r))).unwrap_or_else(failed)
            }
            Request::ApprovalsShow { id } => match self.backend.approval(&id).await {
                Ok(Some(a)) => Answer::ok(render_approval(&a, &self.secrets)),
                Ok(None) => Answer::failed(format!("there is no approval request {id}")),
                Err(e) => failed(e),
            },
            Request::GrantsList { chat } => {
                self.backend.grants(chat.as_deref()).await.map(|g| Answer::ok(render_grants(&g))).unwrap_or_else(failed)
            }
            Request::GrantsRevoke { id } => match self.backend.revoke_grant(&id).await {
                Ok(true) => Answer::ok(format!("revoked {id}\n")),
                Ok(false) => Answer::failed(format!("there is no grant {id}")),
                Err(e) => failed(e),
            },
            Request::StoreSizes => match blocking(&self.store, |s| s.sizes()).await {
                Ok(sizes) => Answer::ok(render_sizes(&sizes, LARGEST_SHOWN)),
                Err(e) => Answer::failed(e.to_string()),
            },
            Request::ApprovalsDecide { .. }
            | Request::PairingList { .. }
            | Request::PairingApprove { .. }
            | Request::PairingReject { .. }
            | Request::PairingRevoke { .. } => Answer::failed(format!(
                "the background SDK engine (pid {}) holds the data directory and does not run channels; try again once its sessions end (it exits {}s after the last one)",
                std::process::id(),
                self.idle_secs
            )),
            Request::Admin { request } => switchboard::admin::answer(&*self.backend, &self.default_model, request).await,
            Request::Engine { .. } | Request::Console { .. } => {
                Answer::failed("a session needs its own connection".into())
            }
        }
    }
}
