//! Engine mode: switchboard speaking the Letta Code SDK's line protocol
//! (`stream-json`, see `letta-code-wire.md` in the reference documents), so the
//! unmodified SDK can use it as its CLI. A session runs in the process that holds
//! the data directory (`serve`, or a background engine); the process the SDK
//! starts carries the session's lines to it over the control socket.

pub mod args;
mod letta;
mod permissions;
mod session;
mod start;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// Sessions running now.
    active: Arc<AtomicUsize>,
}

impl Engine {
    pub fn new(backend: Arc<dyn AgentBackend>, store: Arc<dyn Store>, settings: Settings) -> Engine {
        Engine { backend, store, settings: Arc::new(settings), active: Arc::default() }
    }

    /// Parses the SDK's flags and sets the session up in `cwd` (its tools' working
    /// directory); what it creates is stored before this returns. `Err` is the
    /// one line the SDK shows the application.
    pub async fn start(&self, raw_args: &[String], cwd: &Path) -> Result<Started, String> {
        let args = args::parse(raw_args)?;
        if !cwd.is_absolute() || !cwd.is_dir() {
            return Err(format!("the working directory {} is not a directory", cwd.display()));
        }
        start::start(self, &args, cwd).await
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

    /// Counts a session as running (from its request to its end) until the
    /// guard is dropped.
    pub fn busy(&self) -> Busy {
        self.active.fetch_add(1, Ordering::SeqCst);
        Busy(self.active.clone())
    }

    /// How many sessions are running.
    pub fn active_sessions(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// Counts a session as running until dropped.
pub struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
