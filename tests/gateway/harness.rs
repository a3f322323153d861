//! The real daemon (`switchboard::daemon`), in this process, on its own runtime,
//! against the in-memory `FakeChannel` (and optionally the fake Telegram) and the
//! fake model. A simulated crash drops that runtime with every task in it at
//! whatever await it had reached; a restart opens the same data directory anew.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::AgentBackend;
use switchboard::config::{self, ConfigSource};
use switchboard::daemon::{Daemon, Parts};
use switchboard::store::{FlushHook, ReadHook, SqliteStore, Store, StoreError};
use switchboard_channel_core::ChannelDescriptor;
use switchboard_fakes::channel::{FakeMessage, DESCRIPTOR as FAKE};
use switchboard_fakes::{FakeChannel, FakeLlm, FakeTelegram};

pub const WAIT: Duration = Duration::from_secs(20);
pub const REGISTRY: &[ChannelDescriptor] = &[switchboard_channel_telegram::DESCRIPTOR, FAKE];

pub struct Gw {
    pub llm: FakeLlm,
    pub fake: FakeChannel,
    pub dir: tempfile::TempDir,
    env: HashMap<String, String>,
    running: Option<Running>,
    /// Set on the store at the next start, before anything reads it.
    read_hook_at_start: Option<ReadHook>,
}

struct Running {
    runtime: tokio::runtime::Runtime,
    daemon: Option<Daemon>,
    /// The daemon's store, for tests that wait on what it has written.
    store: Arc<dyn Store>,
    /// The same store (SQLite, the default), for tests that slow or fail its flushes.
    sqlite: Arc<SqliteStore>,
}

impl Gw {
    /// A gateway-to-be with the fake channel (open DMs, admin `7`) and the fake model.
    pub async fn new() -> Gw {
        Gw::with_channel(FakeChannel::new("fake")).await
    }

    pub async fn with_channel(fake: FakeChannel) -> Gw {
        // The daemon's warnings and errors go to the test's captured output, shown
        // when it fails; RUST_LOG=debug shows more.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let llm = FakeLlm::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut gw = Gw { llm, fake, dir, env: HashMap::new(), running: None, read_hook_at_start: None };
        let instance = gw.fake.register();
        gw.set("SWITCHBOARD_FAKE__INSTANCE", &instance);
        gw.set("SWITCHBOARD_FAKE__DM_POLICY", "open");
        gw.set("SWITCHBOARD_FAKE__ADMINS", "7");
        gw
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    pub fn unset(&mut self, key: &str) {
        self.env.remove(key);
    }

    /// Points the Telegram channel at `telegram` too.
    pub fn with_telegram(&mut self, telegram: &FakeTelegram) {
        self.set("SWITCHBOARD_TELEGRAM__TOKEN", &telegram.token());
        self.set("SWITCHBOARD_TELEGRAM__API_URL", &telegram.api_url());
        self.set("SWITCHBOARD_TELEGRAM__DM_POLICY", "open");
        self.set("SWITCHBOARD_TELEGRAM__ADMINS", "7");
        self.set("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", "1");
    }

    pub fn workdir(&self) -> std::path::PathBuf {
        self.dir.path().join("work")
    }

    fn source(&self) -> ConfigSource {
        let mut env = self.env.clone();
        let data_dir = self.dir.path().join("data");
        env.insert("SWITCHBOARD_DATA_DIR".into(), data_dir.display().to_string());
        env.insert("SWITCHBOARD_LLM__BASE_URL".into(), self.llm.base_url());
        env.insert("SWITCHBOARD_LLM__MODEL".into(), "fake-model".into());
        env.insert("SWITCHBOARD_LLM__REQUEST_TIMEOUT_SECS".into(), "20".into());
        env.insert("SWITCHBOARD_AGENT__WORKDIR".into(), self.workdir().display().to_string());
        ConfigSource { file: None, file_required: false, env }
    }

    /// Starts the daemon as `serve` would.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        let settings = config::load_with(&self.source(), REGISTRY).unwrap_or_else(|e| panic!("{e}")).settings;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let read_hook = self.read_hook_at_start.take();
        let started = runtime.spawn(async move {
            let sqlite = open_store(&settings.data_dir, settings.store.cache_mb).await;
            sqlite.before_read(read_hook);
            let store: Arc<dyn Store> = sqlite.clone();
            let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
            let expired = backend.recover().await.expect("recover");
            let parts = Parts { settings, store: store.clone(), backend, expired };
            Daemon::start(parts, REGISTRY).await.map(|daemon| (daemon, store, sqlite))
        });
        let (daemon, store, sqlite) =
            started.await.expect("start task").unwrap_or_else(|e| panic!("daemon start: {e:#}"));
        self.running = Some(Running { runtime, daemon: Some(daemon), store, sqlite });
    }

    /// SIGKILL as far as a process can do it to itself: every task of the daemon is
    /// dropped where it stands, nothing is stopped or flushed on purpose.
    pub fn crash(&mut self) {
        let mut running = self.running.take().expect("not running");
        // The fake holds the daemon's sink, as a real platform connection would die.
        self.fake.detach();
        drop(running.daemon.take());
        running.runtime.shutdown_background();
    }

    /// A crash as the runtime going down lets the daemon see part of it: every task
    /// is dropped except one a worker thread is still running (held by a test's
    /// hook), which goes on once let go. Returns once the others are dropped.
    pub async fn crash_around_one_task(&mut self) {
        let handle = self.running.as_ref().expect("not running").runtime.handle().clone();
        self.crash();
        // The going-down runtime takes each task off its list (the running one
        // too), then drops it: none is left on the list once the last is taken,
        // and a moment later it is dropped.
        let started = Instant::now();
        while handle.metrics().num_alive_tasks() > 0 {
            assert!(started.elapsed() < WAIT, "the crashed runtime kept {} tasks", handle.metrics().num_alive_tasks());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Waits until the daemon has `count` records in the store's `space` (what it
    /// writes after a send, so a crash test can choose which side of it to crash on).
    pub async fn wait_records(&self, space: &str, count: usize) {
        let started = Instant::now();
        loop {
            let found = self.records(space);
            if found >= count {
                return;
            }
            assert!(started.elapsed() < WAIT, "{space} never held {count} records (it holds {found})");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many records the running daemon's store holds in `space` now.
    pub fn records(&self, space: &str) -> usize {
        let store = &self.running.as_ref().expect("running").store;
        store.kv_scan(space, "").map(|r| r.len()).unwrap_or(0)
    }

    /// The records of `space`, each as its key and its stored bytes as text.
    pub fn records_as_text(&self, space: &str) -> Vec<(String, String)> {
        let store = &self.running.as_ref().expect("running").store;
        let records = store.kv_scan(space, "").unwrap_or_default();
        records.into_iter().map(|(key, value)| (key, String::from_utf8_lossy(&value).into_owned())).collect()
    }

    /// Waits until a transcript entry of any conversation contains `needle` (the
    /// store's readers see only what was committed).
    pub async fn wait_transcript(&self, needle: &str) {
        let store = self.running.as_ref().expect("running").store.clone();
        let holds = |store: &Arc<dyn Store>| -> bool {
            let conversations = store.conversations(None).unwrap_or_default();
            conversations.iter().any(|c| {
                let entries = store.entries(&c.id).unwrap_or_default();
                entries.iter().any(|(_, e)| serde_json::to_string(&e.msg.body).unwrap_or_default().contains(needle))
            })
        };
        let started = Instant::now();
        while !holds(&store) {
            assert!(started.elapsed() < WAIT, "no transcript entry ever held {needle:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `hook` before every flush of the running daemon's store (`None`: no
    /// hook): a slow or failing disk.
    pub fn before_flush(&self, hook: Option<FlushHook>) {
        self.running.as_ref().expect("running").sqlite.before_flush(hook);
    }

    /// Runs `hook` before every read of a record by its space and key in the
    /// daemon's store, on the reading thread, from the next start on (before the
    /// replay of what the last run left unanswered reads anything).
    pub fn before_read_from_start(&mut self, hook: ReadHook) {
        self.read_hook_at_start = Some(hook);
    }

    /// What `/readyz` would say now.
    pub async fn readiness(&self) -> switchboard::gateway::Readiness {
        let running = self.running.as_ref().expect("running");
        let daemon = running.daemon.as_ref().expect("running");
        // The daemon's own runtime runs the check, as the endpoint would.
        std::thread::scope(|scope| scope.spawn(|| running.runtime.block_on(daemon.readiness())).join().unwrap())
    }

    /// Turns waiting in line for a place, once there are `count` (or fails after [`WAIT`]).
    pub async fn wait_in_line(&self, count: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let in_line = self.snapshot().turns_in_line;
            if in_line == count {
                return;
            }
            assert!(Instant::now() < deadline, "{in_line} turns in line, not {count}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What `/metrics` would show now.
    pub fn snapshot(&self) -> switchboard::metrics::Snapshot {
        let running = self.running.as_ref().expect("running");
        let daemon = running.daemon.as_ref().expect("running");
        std::thread::scope(|scope| scope.spawn(|| running.runtime.block_on(daemon.snapshot())).join().unwrap())
    }

    /// A clean stop.
    pub async fn stop(&mut self) {
        let mut running = self.running.take().expect("not running");
        if let Some(daemon) = running.daemon.take() {
            let stopping = running.runtime.spawn(async move { daemon.stop().await });
            let _ = stopping.await;
        }
        running.runtime.shutdown_background();
    }

    pub fn statuses(&self) -> Vec<(String, String)> {
        self.running.as_ref().and_then(|r| r.daemon.as_ref()).map(|d| d.statuses()).unwrap_or_default()
    }

    /// Waits for a message containing `needle` in `chat`; returns it.
    pub async fn wait_text(&self, chat: &str, needle: &str) -> FakeMessage {
        let n = needle.to_string();
        let c = chat.to_string();
        self.fake
            .wait_until(&format!("{needle:?} in chat {chat}"), WAIT, move |f| {
                f.messages_in(&c).iter().any(|m| m.text.contains(&n))
            })
            .await;
        self.fake.messages_in(chat).into_iter().rev().find(|m| m.text.contains(needle)).unwrap()
    }

    /// Waits for a prompt with buttons in `chat`.
    pub async fn wait_prompt(&self, chat: &str) -> FakeMessage {
        let c = chat.to_string();
        self.fake.wait_until("an approval prompt", WAIT, move |f| f.prompt_in(&c).is_some()).await;
        self.fake.prompt_in(chat).unwrap()
    }

    /// How many messages in `chat` contain `needle`, after waiting a moment for
    /// any duplicate to arrive.
    pub async fn count_settled(&self, chat: &str, needle: &str) -> usize {
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.fake.messages_in(chat).iter().filter(|m| m.text.contains(needle)).count()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.fake.detach();
            drop(running.daemon);
            running.runtime.shutdown_background();
        }
    }
}

/// Opens the store, waiting for a crashed run's last blocking store calls to let go.
async fn open_store(dir: &std::path::Path, cache_mb: u64) -> Arc<SqliteStore> {
    let started = Instant::now();
    loop {
        match SqliteStore::open(dir, cache_mb) {
            Ok(store) => return Arc::new(store),
            Err(StoreError::Locked { .. }) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot open the store: {e}"),
        }
    }
}
