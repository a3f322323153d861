//! The shape every channel's DM run shares: start `serve` with a channel's
//! settings, time replies one message at a time, then a burst from a thousand
//! DMs, and read the daemon's memory. A channel supplies how to reach a DM, how
//! to write in it, and which DMs the bot answered since a moment.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use switchboard_fakes::FakeLlm;

use super::{rss_kib, CHATS, DEADLINE, LATENCY_SAMPLES, PACE_PASSED};

/// What a channel's run measured.
pub struct Figures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub idle_rss_kib: u64,
    pub loaded_rss_kib: u64,
}

/// A channel's fake, as the run drives it.
pub trait DmChannel {
    /// The DM of chat `n` (1-based), made if needed.
    fn chat(&self, n: i64) -> String;
    /// Person `n` writes `text` to the bot.
    fn write(&self, n: i64, text: &str);
    /// The DMs the bot sent a message to since `after`, and when it first did.
    fn replied_since(&self, after: Instant) -> Vec<(String, Instant)>;
}

/// Starts `switchboard serve` (release build) against the fake model with a
/// channel's `settings`, and waits until `ready` holds.
pub async fn spawn_serve(
    llm: &FakeLlm,
    dir: &std::path::Path,
    settings: &[(&str, String)],
    ready: impl Fn() -> bool,
) -> tokio::process::Child {
    spawn_serve_under(&wrapper(), llm, dir, settings, ready).await
}

/// `BENCH_WRAP=/path/to/script`: the daemon runs under it (a profiler; its RSS
/// figures are then the wrapper's, not the daemon's). Unset or empty: none.
pub fn wrapper() -> Vec<String> {
    std::env::var("BENCH_WRAP").into_iter().filter(|w| !w.is_empty()).collect()
}

/// The daemon's binary: this build's, or `BENCH_DAEMON=/path/to/switchboard`
/// (another build, to compare two under the same benchmark; the daemon starts in
/// a directory of its own, so a relative path is taken from here).
fn daemon_binary() -> std::path::PathBuf {
    match std::env::var("BENCH_DAEMON") {
        Ok(path) => std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("BENCH_DAEMON={path}: {e}")),
        Err(_) => env!("CARGO_BIN_EXE_switchboard").into(),
    }
}

/// [`spawn_serve`] with the daemon run under `wrapper` (a program and its
/// arguments; none: run directly).
pub async fn spawn_serve_under(
    wrapper: &[String],
    llm: &FakeLlm,
    dir: &std::path::Path,
    settings: &[(&str, String)],
    ready: impl Fn() -> bool,
) -> tokio::process::Child {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).arg(daemon_binary());
            cmd
        }
        None => tokio::process::Command::new(daemon_binary()),
    };
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD_")) {
        cmd.env_remove(key);
    }
    cmd.arg("serve")
        .current_dir(dir)
        .env("SWITCHBOARD_DATA_DIR", dir.join("data"))
        .env("SWITCHBOARD_LLM__BASE_URL", llm.base_url())
        .env("SWITCHBOARD_LLM__MODEL", "fake-model")
        .env("SWITCHBOARD_AGENT__WORKDIR", dir.join("work"))
        // The store's cache: what bounds the daemon's memory (64 MiB by default).
        .env("SWITCHBOARD_STORE__CACHE_MB", std::env::var("BENCH_STORE_CACHE_MB").unwrap_or_else(|_| "64".into()))
        .env("RUST_LOG", "warn");
    for (key, value) in settings {
        cmd.env(key, value);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start switchboard serve");
    let started = Instant::now();
    // Slower under a wrapper such as valgrind.
    let limit = Duration::from_secs(if wrapper.is_empty() { 30 } else { 120 });
    while !ready() {
        assert!(started.elapsed() < limit, "serve did not connect to its channel");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// Latency one message at a time, then the burst, then memory; stops the daemon.
pub async fn measure(channel: &impl DmChannel, mut daemon: tokio::process::Child) -> Figures {
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = rss_kib(pid);

    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let chat = channel.chat(1 + i);
        let sent = Instant::now();
        channel.write(1 + i, &format!("latency probe {i}"));
        let deadline = sent + Duration::from_secs(30);
        let replied = loop {
            if let Some((_, at)) = channel.replied_since(sent).into_iter().find(|(c, _)| *c == chat) {
                break at;
            }
            assert!(Instant::now() < deadline, "{chat} got no reply within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(replied.duration_since(sent));
    }
    latencies.sort();
    // The burst talks in the sampled chats again: past their pacing slot.
    tokio::time::sleep(PACE_PASSED).await;

    let chats: Vec<String> = (1..=CHATS).map(|n| channel.chat(n)).collect();
    let started = Instant::now();
    for n in 1..=CHATS {
        channel.write(n, &format!("hello from chat {n}"));
    }
    // Until the last chat's first reply reached the fake (when it arrived there,
    // not when this loop next looked).
    let burst = loop {
        let mut first: HashMap<String, Instant> = HashMap::new();
        for (chat, at) in channel.replied_since(started) {
            first.entry(chat).and_modify(|seen| *seen = (*seen).min(at)).or_insert(at);
        }
        if chats.iter().all(|c| first.contains_key(c)) {
            break chats
                .iter()
                .filter_map(|c| first.get(c))
                .max()
                .map_or(Duration::ZERO, |at| at.duration_since(started));
        }
        assert!(started.elapsed() < DEADLINE, "not every chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded_rss_kib = rss_kib(pid);
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Figures { per_second: CHATS as f64 / burst.as_secs_f64(), p50: p(0.5), p99: p(0.99), idle_rss_kib, loaded_rss_kib }
}

/// Prints one channel's run under `title`.
pub fn print(title: &str, f: &Figures) {
    println!("switchboard gateway benchmark, {title} + instant fake model)");
    println!("  messages per second ({CHATS} DMs, burst):    {:.0}", f.per_second);
    println!("  added latency p50 (event -> reply sent):   {:.1} ms", f.p50.as_secs_f64() * 1000.0);
    println!("  added latency p99:                         {:.1} ms", f.p99.as_secs_f64() * 1000.0);
    println!("  idle RSS:                                  {:.1} MiB", f.idle_rss_kib as f64 / 1024.0);
    println!("  RSS after {CHATS} conversations:               {:.1} MiB", f.loaded_rss_kib as f64 / 1024.0);
}
