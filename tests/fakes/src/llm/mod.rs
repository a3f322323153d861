//! Fake OpenAI-compatible chat-completions server: a FIFO reply script plus a request log.

mod handlers;
mod reply;
mod request;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use reply::{FakeToolCall, Fallback, Gate, Quirks, Reply};
pub use request::RecordedRequest;

const DEFAULT_MODEL: &str = "fake-model";

/// Handle to a running fake LLM server. Clones share the same server, which
/// stops (closing every open connection) when the last handle is dropped.
#[derive(Clone)]
pub struct FakeLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: Arc<crate::server::ServerTask>,
}

impl FakeLlm {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub async fn start() -> FakeLlm {
        let shared = Arc::new(Shared::default());
        let app = handlers::router(Arc::clone(&shared));
        let (addr, server) = crate::server::start("fake llm", app).await;
        FakeLlm { shared, addr, _server: server }
    }

    /// `http://127.0.0.1:PORT/v1`, the OpenAI base URL clients should use.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a reply to the FIFO script.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// Model ids served by `GET /v1/models` (default `["fake-model"]`).
    pub fn set_models(&self, models: Vec<String>) {
        self.shared.lock().models = models;
    }

    /// What to answer when the script is empty (default [`Fallback::Error`]).
    pub fn set_fallback(&self, fallback: Fallback) {
        self.shared.lock().fallback = fallback;
    }

    /// Serves llama.cpp's `GET /props` with this context size (`None`, the
    /// default: no such route, as on OpenAI).
    pub fn set_context_size(&self, n_ctx: Option<u64>) {
        self.shared.lock().context_size = n_ctx;
    }

    /// Behaves like a server with these quirks from now on (default none).
    pub fn set_quirks(&self, quirks: Quirks) {
        self.shared.lock().quirks = quirks;
    }

    /// Delay between SSE chunks of later responses (default zero).
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.lock().chunk_delay = delay;
    }

    /// Every chat-completions request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.iter().map(|r| (**r).clone()).collect()
    }

    /// Scripted replies not yet consumed.
    pub fn pending_replies(&self) -> usize {
        self.shared.lock().replies.len()
    }

    /// Waits until at least `n` requests arrived and returns all of them.
    ///
    /// # Panics
    /// When `timeout` passes first.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut seen = self.shared.seen.subscribe();
        let reached = tokio::time::timeout(timeout, seen.wait_for(|&count| count >= n))
            .await
            .is_ok_and(|changed| changed.is_ok());
        let requests = self.requests();
        if !reached {
            let users: Vec<String> = requests.iter().map(|r| r.last_user_text()).collect();
            panic!(
                "fake llm: timed out after {timeout:?} waiting for {n} chat requests; \
                 got {} (last user messages: {users:?})",
                requests.len()
            );
        }
        requests
    }
}

/// State shared between the handle and the request handlers.
pub(crate) struct Shared {
    script: Mutex<Script>,
    /// Number of recorded requests, for `wait_for_requests`.
    seen: watch::Sender<usize>,
}

struct Script {
    replies: VecDeque<Reply>,
    models: Vec<String>,
    fallback: Fallback,
    chunk_delay: Duration,
    quirks: Quirks,
    context_size: Option<u64>,
    /// Shared with the handler answering it (a request's body is not copied).
    requests: Vec<Arc<RecordedRequest>>,
}

/// What a handler needs to answer one recorded request.
pub(crate) struct Turn {
    pub reply: Option<Reply>,
    pub fallback: Fallback,
    pub chunk_delay: Duration,
    pub quirks: Quirks,
}

impl Default for Shared {
    fn default() -> Shared {
        let script = Script {
            replies: VecDeque::new(),
            models: vec![DEFAULT_MODEL.to_owned()],
            fallback: Fallback::default(),
            chunk_delay: Duration::ZERO,
            quirks: Quirks::default(),
            context_size: None,
            requests: Vec::new(),
        };
        Shared { script: Mutex::new(script), seen: watch::Sender::new(0) }
    }
}

impl Shared {
    /// A panicking test thread must not wedge the server, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a request without consuming a reply (e.g. a rejected body).
    pub(crate) fn record(&self, request: RecordedRequest) {
        let count = {
            let mut script = self.lock();
            script.requests.push(Arc::new(request));
            script.requests.len()
        };
        self.seen.send_replace(count);
    }

    /// Records a request and pops its reply in one step, so the n-th request
    /// always gets the n-th scripted reply.
    pub(crate) fn record_and_pop(&self, request: Arc<RecordedRequest>) -> Turn {
        let (turn, count) = {
            let mut script = self.lock();
            script.requests.push(request);
            let turn = Turn {
                reply: script.replies.pop_front(),
                fallback: script.fallback,
                chunk_delay: script.chunk_delay,
                quirks: script.quirks,
            };
            (turn, script.requests.len())
        };
        self.seen.send_replace(count);
        turn
    }

    pub(crate) fn context_size(&self) -> Option<u64> {
        self.lock().context_size
    }

    pub(crate) fn quirks(&self) -> Quirks {
        self.lock().quirks
    }

    pub(crate) fn models(&self) -> Vec<String> {
        self.lock().models.clone()
    }
}
