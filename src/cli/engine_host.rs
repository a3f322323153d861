//! `switchboard engine-host` (not listed in the help): the background engine an
//! SDK process starts when no switchboard holds the data directory. It serves SDK
//! sessions and the operator's read-only commands on the control socket, and exits
//! once it has had no session for `[engine] idle_secs`, or on SIGTERM. Any other
//! command that opens the store serves the same way while it runs ([`Served`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard::admin::StoreRequests;
use switchboard::agent::AgentBackend;
use switchboard::control::{self, Answer, Handler, Peer, Request};
use switchboard::wire::Engine;

use super::app::App;

pub async fn run(app: App) -> anyhow::Result<i32> {
    let idle = Duration::from_secs(app.settings.engine.idle_secs);
    let served = Served::start(&app)?;
    tracing::info!(pid = std::process::id(), "the SDK engine is serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = term.recv() => break,
        }
        if served.idle_for().is_some_and(|quiet| quiet >= idle) {
            break;
        }
    }
    // A turn's writes are stored as it goes: after a while, stop anyway.
    served.finish(Some(Duration::from_secs(30))).await;
    tracing::info!("the SDK engine stopped");
    Ok(0)
}

/// This process serving the others on the control socket while it holds the data
/// directory: SDK sessions, `chat` and `prompt` sessions, and the operator's commands.
pub struct Served {
    engine: Engine,
    listener: tokio::task::JoinHandle<()>,
    data_dir: std::path::PathBuf,
    started: Instant,
}

impl Served {
    pub fn start(app: &App) -> std::io::Result<Served> {
        let backend: Arc<dyn AgentBackend> = app.backend.clone();
        let engine = Engine::new(backend.clone(), app.store.clone(), app.settings.clone());
        let handler = Arc::new(HostHandler(StoreRequests {
            backend,
            store: app.store.clone(),
            secrets: app.settings.secrets(),
            default_model: app.settings.llm.model.clone(),
        }));
        let listener = control::serve(&app.settings.data_dir, handler, Some(engine.clone()))?;
        Ok(Served { engine, listener, data_dir: app.settings.data_dir.clone(), started: Instant::now() })
    }

    /// Like [`Served::start`] for a command that can do its own work without
    /// serving: a socket that cannot be opened is a warning, not a failure.
    pub fn try_start(app: &App) -> Option<Served> {
        Served::start(app)
            .map_err(|e| {
                eprintln!("warning: other switchboard commands cannot reach this one ({e}); they wait until it ends")
            })
            .ok()
    }

    /// How long nothing has been connected; `None` while something is.
    pub fn idle_for(&self) -> Option<Duration> {
        self.engine.idle_for(self.started)
    }

    /// Takes no more connections, then waits for those it has (at most `limit`),
    /// saying so when it must wait.
    pub async fn finish(self, limit: Option<Duration>) {
        self.listener.abort();
        let _ = std::fs::remove_file(control::socket_path(&self.data_dir));
        if self.idle_for().is_none() && limit.is_none() {
            eprintln!(
                "waiting for the sessions this process serves (other switchboard commands, SDK sessions) to end…"
            );
        }
        let deadline = limit.map(|l| Instant::now() + l);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        while self.idle_for().is_none() && deadline.is_none_or(|d| Instant::now() < d) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                // Ctrl-C: leave now; those sessions end (what they stored stays).
                _ = &mut interrupted => break,
            }
        }
    }
}

/// The operator's commands while a process other than `serve` holds the data
/// directory: the store-only ones. Decisions and pairing need the daemon.
struct HostHandler(StoreRequests);

#[async_trait]
impl Handler for HostHandler {
    async fn handle(&self, request: Request, _peer: &Peer) -> Answer {
        match self.0.answer(request).await {
            Ok(answer) => answer,
            Err(Request::Engine { .. } | Request::Console { .. }) => {
                Answer::failed("a session needs its own connection".into())
            }
            Err(_) => Answer::failed(format!(
                "the switchboard process holding the data directory (pid {}, not `serve`) does not run channels; try again once it has ended",
                std::process::id(),
            )),
        }
    }
}
