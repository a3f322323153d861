//! The Discord run of the gateway benchmark: the real `switchboard serve` against
//! the fake Discord (HTTP API and Gateway) and the instant fake model. The same
//! shape as the Telegram run: added latency one message at a time, then a burst
//! from a thousand DMs, and the daemon's memory idle and after the burst.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use switchboard_fakes::{FakeDiscord, FakeLlm};

use super::{rss_kib, CHATS, DEADLINE, LATENCY_SAMPLES};

/// The heading of this run's figures.
pub const TITLE: &str = "Discord run (fake Discord API and Gateway";

/// What a channel's run measured.
pub struct Figures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub idle_rss_kib: u64,
    pub loaded_rss_kib: u64,
}

/// Discord user ids for chat `n`.
fn user(n: i64) -> String {
    format!("{}", 100_000_000_000_000_000 + n)
}

pub async fn run(llm: &FakeLlm) -> Figures {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(llm, &discord, dir.path()).await;
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = rss_kib(pid);

    let mut latencies = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let user = user(1 + i);
        let channel = discord.dm_channel(&user);
        let sent = Instant::now();
        discord.dm(&user, &format!("latency probe {i}"));
        latencies.push(wait_reply(&discord, &channel, sent, Duration::from_secs(30)).await.duration_since(sent));
    }
    latencies.sort();

    let channels: Vec<String> = (1..=CHATS).map(|n| discord.dm_channel(&user(n))).collect();
    let started = Instant::now();
    for n in 1..=CHATS {
        discord.dm(&user(n), &format!("hello from chat {n}"));
    }
    loop {
        let replied = replied_since(&discord, started);
        if channels.iter().all(|c| replied.contains(c)) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "not every Discord chat was answered within {DEADLINE:?}");
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

/// Prints one channel's run under `title`.
pub fn print(title: &str, f: &Figures) {
    println!("switchboard gateway benchmark, {title} + instant fake model)");
    println!("  messages per second ({CHATS} DMs, burst):    {:.0}", f.per_second);
    println!("  added latency p50 (event -> reply sent):   {:.1} ms", f.p50.as_secs_f64() * 1000.0);
    println!("  added latency p99:                         {:.1} ms", f.p99.as_secs_f64() * 1000.0);
    println!("  idle RSS:                                  {:.1} MiB", f.idle_rss_kib as f64 / 1024.0);
    println!("  RSS after {CHATS} conversations:               {:.1} MiB", f.loaded_rss_kib as f64 / 1024.0);
}

async fn start(llm: &FakeLlm, discord: &FakeDiscord, dir: &std::path::Path) -> tokio::process::Child {
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
        .env("SWITCHBOARD_DISCORD__TOKEN", discord.token())
        .env("SWITCHBOARD_DISCORD__API_URL", discord.api_url())
        .env("SWITCHBOARD_DISCORD__DM_POLICY", "open")
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
    while discord.sessions().1 == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not connect to the Discord gateway");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// When the first reply reached `channel`.
async fn wait_reply(discord: &FakeDiscord, channel: &str, after: Instant, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    let path = format!("/api/v10/channels/{channel}/messages");
    loop {
        if let Some(call) =
            discord.calls().into_iter().rev().find(|c| c.at >= after && c.method == "POST" && c.path == path)
        {
            return call.at;
        }
        assert!(Instant::now() < deadline, "{channel} got no reply within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The channels the bot sent a message to since `after`.
fn replied_since(discord: &FakeDiscord, after: Instant) -> HashSet<String> {
    discord
        .calls()
        .into_iter()
        .filter(|c| c.at >= after && c.method == "POST")
        .filter_map(|c| c.path.strip_prefix("/api/v10/channels/")?.strip_suffix("/messages").map(str::to_string))
        .collect()
}
