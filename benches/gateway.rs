//! Gateway benchmark: the real `switchboard serve` (release build) against the fake
//! Telegram Bot API and an instant fake model, all on 127.0.0.1. Prints throughput,
//! added latency, and the daemon's memory. Then the daemon in this process with the
//! in-memory fake channel, to time what an adapter waits for: `deliver` returning
//! (the acknowledgement) while a thousand chats are in flight. Every loop is
//! bounded in count and time.
//!
//! cargo bench --bench gateway

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde_json::Value;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::config::{self, ConfigSource};
use switchboard::daemon::{Daemon, Parts};
use switchboard::store::{SledStore, Store};
use switchboard_fakes::{FakeChannel, FakeLlm, FakeTelegram, Fallback};

const CHATS: i64 = 1000;
const LATENCY_SAMPLES: i64 = 200;
const DEADLINE: Duration = Duration::from_secs(600);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let llm = FakeLlm::start().await;
    llm.set_fallback(Fallback::Echo);
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(&llm, &telegram, dir.path()).await;
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid);

    // Latency: one message at a time, so no queueing is measured.
    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let chat = 1_000_000 + i;
        let sent = Instant::now();
        telegram.send_dm(chat, &format!("latency probe {i}"));
        latencies.push(wait_reply(&telegram, chat, sent, Duration::from_secs(30)).await.duration_since(sent));
    }
    latencies.sort();

    // Throughput: a burst of messages from CHATS different chats.
    let burst_start = Instant::now();
    for chat in 1..=CHATS {
        telegram.send_dm(chat, &format!("hello from chat {chat}"));
    }
    let deadline = burst_start + DEADLINE;
    loop {
        let replied = replied_chats(&telegram);
        if (1..=CHATS).all(|c| replied.contains_key(&c)) {
            break;
        }
        assert!(Instant::now() < deadline, "not every chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let burst = burst_start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded_rss = rss_kib(pid);
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;

    let acks = acknowledgements(&llm).await;

    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let ack = |q: f64| acks[((acks.len() as f64 - 1.0) * q).round() as usize];
    println!("switchboard gateway benchmark (release build, fake Telegram + instant fake model on 127.0.0.1)");
    println!("  messages per second ({CHATS} chats, burst):  {:.0}", CHATS as f64 / burst.as_secs_f64());
    println!("  added latency p50 (update -> reply sent):  {:.1} ms", p(0.50).as_secs_f64() * 1000.0);
    println!("  added latency p99:                         {:.1} ms", p(0.99).as_secs_f64() * 1000.0);
    println!("  idle RSS:                                  {:.1} MiB", idle_rss as f64 / 1024.0);
    println!(
        "  RSS after {} conversations:              {:.1} MiB",
        CHATS + LATENCY_SAMPLES,
        loaded_rss as f64 / 1024.0
    );
    println!("  acknowledgement p50 ({CHATS} chats in flight):  {:.2} ms", ack(0.50).as_secs_f64() * 1000.0);
    println!("  acknowledgement p99:                         {:.2} ms", ack(0.99).as_secs_f64() * 1000.0);
}

/// The daemon in this process with the fake channel: CHATS messages from CHATS
/// chats handed over one after another, as a poll loop would, without waiting for
/// answers, so every turn's writes load the store while later events are
/// journaled. Returns how long each `deliver` took, sorted.
async fn acknowledgements(llm: &FakeLlm) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeChannel::new("fake");
    let registry = [switchboard_fakes::channel::DESCRIPTOR];
    let env: HashMap<String, String> = [
        ("SWITCHBOARD_DATA_DIR", dir.path().join("data").display().to_string()),
        ("SWITCHBOARD_LLM__BASE_URL", llm.base_url()),
        ("SWITCHBOARD_LLM__MODEL", "fake-model".into()),
        ("SWITCHBOARD_AGENT__WORKDIR", dir.path().join("work").display().to_string()),
        ("SWITCHBOARD_FAKE__INSTANCE", fake.register()),
        ("SWITCHBOARD_FAKE__DM_POLICY", "open".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = config::load_with(&ConfigSource { file: None, file_required: false, env }, &registry)
        .expect("settings")
        .settings;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&settings.data_dir).expect("store"));
    let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
    let daemon =
        Daemon::start(Parts { settings, store, backend, expired: Vec::new() }, &registry).await.expect("start");
    let mut took = Vec::new();
    for chat in 1..=CHATS {
        let delivered = fake.dm(&format!("{}", 2_000_000 + chat), &format!("ack probe {chat}")).await;
        delivered.result.expect("journaled");
        took.push(delivered.took);
    }
    let deadline = Instant::now() + DEADLINE;
    while fake.calls_of(switchboard_fakes::channel::Op::Send).len() < CHATS as usize {
        assert!(Instant::now() < deadline, "not every chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.stop().await;
    took.sort();
    took
}

async fn start(llm: &FakeLlm, telegram: &FakeTelegram, dir: &std::path::Path) -> tokio::process::Child {
    let polls = telegram.calls_of("getupdates").len();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD_")) {
        cmd.env_remove(key);
    }
    let child = cmd
        .arg("serve")
        .current_dir(dir)
        .env("SWITCHBOARD_DATA_DIR", dir.join("data"))
        .env("SWITCHBOARD_LLM__BASE_URL", llm.base_url())
        .env("SWITCHBOARD_LLM__MODEL", "fake-model")
        .env("SWITCHBOARD_TELEGRAM__TOKEN", telegram.token())
        .env("SWITCHBOARD_TELEGRAM__API_URL", telegram.api_url())
        .env("SWITCHBOARD_TELEGRAM__DM_POLICY", "open")
        .env("SWITCHBOARD_AGENT__WORKDIR", dir.join("work"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start switchboard serve");
    let started = Instant::now();
    while telegram.calls_of("getupdates").len() <= polls {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not start polling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// When the first reply reached `chat` (as recorded by the fake).
async fn wait_reply(telegram: &FakeTelegram, chat: i64, after: Instant, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let call = telegram
            .calls_of("sendmessage")
            .into_iter()
            .rev()
            .find(|c| c.at >= after && c.params.get("chat_id").and_then(Value::as_i64) == Some(chat));
        if let Some(call) = call {
            return call.at;
        }
        assert!(Instant::now() < deadline, "chat {chat} got no reply within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn replied_chats(telegram: &FakeTelegram) -> HashMap<i64, Instant> {
    telegram
        .calls_of("sendmessage")
        .into_iter()
        .filter_map(|c| c.params.get("chat_id").and_then(Value::as_i64).map(|chat| (chat, c.at)))
        .collect()
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
