//! The Slack run of the gateway benchmark: the real `switchboard serve` in
//! Socket Mode against the fake Slack and the instant fake model, the same
//! shape as the other runs: latency one message at a time, a burst from a
//! thousand DMs, and the daemon's memory.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use switchboard_fakes::slack::{APP_TOKEN, BOT_TOKEN};
use switchboard_fakes::{FakeLlm, FakeSlack};

use super::discord::Figures;
use super::{rss_kib, CHATS, DEADLINE, LATENCY_SAMPLES};

/// The heading of this run's figures.
pub const TITLE: &str = "Slack run (fake Slack Web API and Socket Mode";

/// The Slack user of chat `n`.
fn user(n: i64) -> String {
    format!("U{n:08}")
}

pub async fn run(llm: &FakeLlm) -> Figures {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(llm, &slack, dir.path()).await;
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = rss_kib(pid);

    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let user = user(1 + i);
        let channel = slack.dm_channel(&user);
        let sent = Instant::now();
        slack.dm(&user, None, &format!("latency probe {i}"));
        latencies.push(wait_reply(&slack, &channel, sent, Duration::from_secs(30)).await.duration_since(sent));
    }
    latencies.sort();

    let channels: Vec<String> = (1..=CHATS).map(|n| slack.dm_channel(&user(n))).collect();
    let started = Instant::now();
    for n in 1..=CHATS {
        slack.dm(&user(n), None, &format!("hello from chat {n}"));
    }
    loop {
        let replied = replied_since(&slack, started);
        if channels.iter().all(|c| replied.contains(c)) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "not every Slack chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let burst = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded_rss_kib = rss_kib(pid);
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Figures { per_second: CHATS as f64 / burst.as_secs_f64(), p50: p(0.5), p99: p(0.99), idle_rss_kib, loaded_rss_kib }
}

async fn start(llm: &FakeLlm, slack: &FakeSlack, dir: &std::path::Path) -> tokio::process::Child {
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
        .env("SWITCHBOARD_SLACK__BOT_TOKEN", BOT_TOKEN)
        .env("SWITCHBOARD_SLACK__APP_TOKEN", APP_TOKEN)
        .env("SWITCHBOARD_SLACK__API_URL", slack.api_url())
        .env("SWITCHBOARD_SLACK__DM_POLICY", "open")
        .env("SWITCHBOARD_AGENT__WORKDIR", dir.join("work"))
        .env("SWITCHBOARD_STORE__CACHE_MB", std::env::var("BENCH_STORE_CACHE_MB").unwrap_or_else(|_| "64".into()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start switchboard serve");
    let started = Instant::now();
    while slack.connections() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not open a Socket Mode connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// When the first reply reached `channel`.
async fn wait_reply(slack: &FakeSlack, channel: &str, after: Instant, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let sent = slack
            .calls_of("chat.postMessage")
            .into_iter()
            .rev()
            .find(|c| c.at >= after && c.body["channel"] == channel);
        if let Some(call) = sent {
            return call.at;
        }
        assert!(Instant::now() < deadline, "{channel} got no reply within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The channels the app posted to since `after`.
fn replied_since(slack: &FakeSlack, after: Instant) -> HashSet<String> {
    slack
        .calls_of("chat.postMessage")
        .into_iter()
        .filter(|c| c.at >= after)
        .filter_map(|c| c.body["channel"].as_str().map(str::to_string))
        .collect()
}
