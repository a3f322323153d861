//! Engine mode: switchboard speaking the Letta Code SDK's line protocol
//! (`stream-json`, see `letta-code-wire.md` in the reference documents), so the
//! unmodified SDK can use it as its CLI. A session runs in the process that holds
//! the data directory (`serve`, or a background engine); the process the SDK
//! starts carries the session's lines to it over the control socket.

pub mod args;
mod control;
mod external;
mod letta;
mod permissions;
mod session;
mod start;
mod turn;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::agent::AgentBackend;
use crate::config::Settings;
use crate::store::Store;
pub use start::{Started, SDK_CHAT};

/// What SDK sessions run on; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub backend: Arc<dyn AgentBackend>,
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    /// Connections open now, and when the last one closed.
    active: Arc<Activity>,
}

#[derive(Default)]
struct Activity {
    open: AtomicUsize,
    last_closed: std::sync::Mutex<Option<Instant>>,
}

impl Engine {
    pub fn new(backend: Arc<dyn AgentBackend>, store: Arc<dyn Store>, settings: Settings) -> Engine {
        Engine { backend, store, settings: Arc::new(settings), active: Arc::default() }
    }

    /// Parses the SDK's flags and sets the session up in `cwd` (its tools' working
    /// directory, which may hold neither switchboard's files nor `client_files`);
    /// what it creates is stored before this returns. `Err` is the one line the
    /// SDK shows the application.
    pub async fn start(&self, raw_args: &[String], cwd: &Path, client_files: &[PathBuf]) -> Result<Started, String> {
        let args = args::parse(raw_args)?;
        if !cwd.is_absolute() || !cwd.is_dir() {
            return Err(format!("the working directory {} is not a directory", cwd.display()));
        }
        start::start(self, &args, cwd, client_files).await
    }

    /// Runs a started session over `input` and `output` until the input ends and
    /// its turns are done, or the output is gone.
    pub async fn run<R, W>(&self, started: Started, input: R, output: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        session::run(self, started, input, output).await;
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn busy(&self) -> Busy {
        self.active.open.fetch_add(1, Ordering::SeqCst);
        Busy(self.active.clone())
    }

    /// How long nothing has been connected; `None` while something is.
    pub fn idle_for(&self, started: Instant) -> Option<std::time::Duration> {
        if self.active.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = self.active.last_closed.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or(started);
        Some(last.elapsed())
    }
}

/// Counts a connection as open until dropped.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last_closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}
