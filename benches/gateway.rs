//! Gateway benchmark: the real `switchboard serve` (release build) against the fake
//! Telegram Bot API and an instant fake model, all on 127.0.0.1. Prints throughput,
//! added latency, and the daemon's memory (idle, after 1,000 and after 10,000
//! conversations). Then the daemon in this process with the in-memory fake channel,
//! to time what an adapter waits for: `deliver` returning (the acknowledgement)
//! while a thousand chats are in flight. Last, what one message costs in a long
//! conversation: recording it and starting a turn, at 100 and at 10,000 transcript
//! entries. Every loop is bounded in count and time.
//!
//! The same against the fake Discord (`gateway/discord.rs`) and the fake Slack
//! (`gateway/slack.rs`) follows, and all are printed.
//!
//! cargo bench --bench gateway (`-- discord` or `-- slack` runs only that run;
//! `-- throughput` only the Telegram latency and burst (with the daemon's store
//! writes and flushes and its turns in the burst, from its `/metrics`); `-- memory`
//! those and memory; `-- postgres` the in-process run and the burst with the store on PostgreSQL,
//! then with two replicas; `-- replicas` only the replicas; `-- instructions` what
//! a message costs in instructions, which does not vary by the hour
//! (`gateway/instructions.rs`, needs valgrind)). Every run first prints how fast
//! the machine is at that moment (`gateway/machine.rs`). `BENCH_DAEMON=/path`
//! runs another build of the daemon under the same benchmark.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde_json::Value;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::config::{self, ConfigSource};
use switchboard::daemon::{Daemon, Parts};
use switchboard::store::postgres::{PgOptions, PgStore};
use switchboard::store::Store;
use switchboard_fakes::{FakeChannel, FakeLlm, FakeTelegram, Fallback};

#[path = "gateway/discord.rs"]
mod discord;
#[path = "gateway/dm_run.rs"]
mod dm_run;
#[path = "gateway/instructions.rs"]
mod instructions;
#[path = "gateway/machine.rs"]
mod machine;
#[path = "gateway/slack.rs"]
mod slack;

const CHATS: i64 = 1000;
const LATENCY_SAMPLES: i64 = 200;
/// Conversations when memory is measured the second time.
const MANY_CHATS: i64 = 10_000;
const DEADLINE: Duration = Duration::from_secs(600);
/// Longer than any channel's pacing interval per chat (a second on Telegram and
/// Discord, 1.5 s on Slack): the burst talks again in the chats the latency
/// samples used, and must not time the wait for their next slot.
const PACE_PASSED: Duration = Duration::from_millis(1600);
/// How long the daemon idles before memory is measured the last time.
const IDLE_AFTER: Duration = Duration::from_secs(95);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let llm = FakeLlm::start().await;
    llm.set_fallback(Fallback::Echo);
    machine::print_reference();
    // `cargo bench --bench gateway -- history` runs only the history figures.
    if std::env::args().skip(1).any(|a| a == "history") {
        print_scaling(&history_scaling(&llm).await);
        return;
    }
    // `-- flushes`: only the in-process run, with its acknowledgements and flush count.
    if std::env::args().skip(1).any(|a| a == "flushes") {
        let Acks { took, flushes_per_message, writes_per_message, per_second } = acknowledgements(&llm, None).await;
        let ack = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "  {per_second:.0} messages per second in process; acknowledgement p50 {:.2} ms, p99 {:.2} ms",
            ack(0.50).as_secs_f64() * 1000.0,
            ack(0.99).as_secs_f64() * 1000.0
        );
        println!(
            "  store writes per message {writes_per_message:.1}, flushes per message {flushes_per_message:.1} ({:.1} writes a flush)",
            writes_per_message / flushes_per_message
        );
        return;
    }
    // `-- replicas`: two replicas on PostgreSQL, one polling.
    if std::env::args().skip(1).any(|a| a == "replicas") {
        print_replicas(&llm).await;
        return;
    }
    // `-- postgres`: the in-process run and the Telegram burst on PostgreSQL.
    if std::env::args().skip(1).any(|a| a == "postgres") {
        print_postgres(&llm).await;
        return;
    }
    // `-- instructions`: what a message costs in instructions, under callgrind.
    if std::env::args().skip(1).any(|a| a == "instructions") {
        instructions::run(&llm).await;
        return;
    }
    if std::env::args().skip(1).any(|a| a == "discord") {
        dm_run::print(discord::TITLE, &discord::run(&llm).await);
        return;
    }
    if std::env::args().skip(1).any(|a| a == "slack") {
        dm_run::print(slack::TITLE, &slack::run(&llm).await);
        return;
    }
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = format!("127.0.0.1:{}", switchboard_fakes::free_port());
    let mut daemon = start(&llm, &telegram, dir.path(), &[("SWITCHBOARD_SERVER__LISTEN", operator.clone())]).await;
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid);

    let latencies = latency_samples(&telegram).await;

    // Throughput: a burst of messages from CHATS different chats (with
    // `-- throughput`, `BENCH_BURST=N` chats: a larger store by the burst's end).
    let throughput_only = std::env::args().skip(1).any(|a| a == "throughput");
    let chats = match throughput_only {
        true => std::env::var("BENCH_BURST").ok().and_then(|n| n.parse().ok()).filter(|n| *n > 0).unwrap_or(CHATS),
        false => CHATS,
    };
    let (before, counted_before) = (CpuUsed::now(pid), DaemonCounts::scrape(&operator).await);
    let burst = answer_burst(&telegram, 1..=chats).await;
    let cpu = CpuUsed::now(pid).per_message_since(&before, chats);
    let counted = DaemonCounts::scrape(&operator).await.since(&counted_before);
    let p50 = latencies[latencies.len() / 2].as_secs_f64() * 1000.0;
    // `cargo bench --bench gateway -- throughput` stops here.
    if throughput_only {
        let _ = daemon.start_kill();
        let _ = daemon.wait().await;
        println!(
            "  {:.0} messages per second (burst of {chats}), latency p50 {p50:.1} ms",
            chats as f64 / burst.as_secs_f64()
        );
        cpu.print();
        counted.print(chats, burst);
        return;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded_rss = rss_kib(pid);
    more_conversations(&telegram).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let many_rss = rss_kib(pid);
    // `BENCH_MORE_CHATS=N`: N more conversations after those, to see where memory
    // levels off (each 5,000 printed).
    let more: i64 = std::env::var("BENCH_MORE_CHATS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if more > 0 {
        tokio::time::sleep(Duration::from_secs(40)).await;
        println!("  RSS after {MANY_CHATS} conversations and 40 s idle: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
    }
    for start in (MANY_CHATS + 1..=MANY_CHATS + more).step_by(CHATS as usize) {
        let end = (start + CHATS - 1).min(MANY_CHATS + more);
        answer_burst(&telegram, start..=end).await;
        if end % 5_000 == 0 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib = |key: &str| {
                status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string()).unwrap_or_default()
            };
            println!(
                "  RSS after {end} conversations: {:.1} MiB (anonymous {}, files {})",
                rss_kib(pid) as f64 / 1024.0,
                kib("RssAnon:"),
                kib("RssFile:")
            );
        }
    }
    // Once idle: what stays.
    tokio::time::sleep(IDLE_AFTER).await;
    let idle_many_rss = rss_kib(pid);
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    // `cargo bench --bench gateway -- memory` stops here.
    if std::env::args().skip(1).any(|a| a == "memory") {
        println!("  {:.0} messages per second (burst), latency p50 {p50:.1} ms", CHATS as f64 / burst.as_secs_f64());
        println!(
            "  idle RSS {:.1} MiB; after {CHATS} conversations {:.1} MiB; after {MANY_CHATS} {:.1} MiB, then idle {:.1} MiB",
            idle_rss as f64 / 1024.0,
            loaded_rss as f64 / 1024.0,
            many_rss as f64 / 1024.0,
            idle_many_rss as f64 / 1024.0
        );
        return;
    }

    let Acks { took: acks, flushes_per_message, writes_per_message, per_second: in_process } =
        acknowledgements(&llm, None).await;
    let scaling = history_scaling(&llm).await;
    let on_discord = discord::run(&llm).await;
    let on_slack = slack::run(&llm).await;

    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let ack = |q: f64| acks[((acks.len() as f64 - 1.0) * q).round() as usize];
    println!("switchboard gateway benchmark (release build, fake Telegram + instant fake model on 127.0.0.1)");
    println!("  messages per second ({CHATS} chats, burst):  {:.0}", CHATS as f64 / burst.as_secs_f64());
    cpu.print();
    println!("  added latency p50 (update -> reply sent):  {:.1} ms", p(0.50).as_secs_f64() * 1000.0);
    println!("  added latency p99:                         {:.1} ms", p(0.99).as_secs_f64() * 1000.0);
    println!("  idle RSS:                                  {:.1} MiB", idle_rss as f64 / 1024.0);
    println!("  RSS after {CHATS} conversations:               {:.1} MiB", loaded_rss as f64 / 1024.0);
    println!("  RSS after {MANY_CHATS} conversations:              {:.1} MiB", many_rss as f64 / 1024.0);
    println!(
        "  ... then {}s idle:                             {:.1} MiB",
        IDLE_AFTER.as_secs(),
        idle_many_rss as f64 / 1024.0
    );
    println!("  acknowledgement p50 ({CHATS} chats in flight):  {:.2} ms", ack(0.50).as_secs_f64() * 1000.0);
    println!("  acknowledgement p99:                         {:.2} ms", ack(0.99).as_secs_f64() * 1000.0);
    println!("  messages per second (in process, fake channel): {in_process:.0}");
    println!("  store writes per message (in process):       {writes_per_message:.1}");
    println!(
        "  store flushes per message (in process):      {flushes_per_message:.1} ({:.1} writes a flush)",
        writes_per_message / flushes_per_message
    );
    print_scaling(&scaling);
    dm_run::print(discord::TITLE, &on_discord);
    dm_run::print(slack::TITLE, &on_slack);
}

fn print_scaling(scaling: &[(usize, Duration, Duration)]) {
    for (entries, record, start) in scaling {
        println!(
            "  at {entries:>6} transcript entries: record a message {:.2} ms, start a turn {:.2} ms (medians)",
            record.as_secs_f64() * 1000.0,
            start.as_secs_f64() * 1000.0
        );
    }
    let ratio =
        |f: fn(&(usize, Duration, Duration)) -> Duration| f(&scaling[1]).as_secs_f64() / f(&scaling[0]).as_secs_f64();
    println!(
        "  10,000 vs 100 entries: record {:.2}x, turn start {:.2}x (goal: under 1.5x)",
        ratio(|s| s.1),
        ratio(|s| s.2)
    );
}

/// Entries in the conversations whose per-message costs are compared.
const HISTORY_SIZES: [usize; 2] = [100, 10_000];
/// Samples per measurement.
const HISTORY_SAMPLES: usize = 100;
/// Entries after the last compaction (the kept tail), the same at every size.
const KEPT_TAIL: usize = 20;

/// The cost of a message in a long conversation, at each of `HISTORY_SIZES`
/// entries (older ones summarised by a compaction, as a long conversation is):
/// the median time to record a listened message, and to start a turn (from
/// handing over the message to the model's request arriving). Returns
/// `(entries, record, start)`.
async fn history_scaling(llm: &FakeLlm) -> Vec<(usize, Duration, Duration)> {
    use switchboard::agent::{AgentBackend, SessionOptions, UserInput};
    // One conversation of each size, each in its own data directory.
    let mut setups = Vec::new();
    for size in HISTORY_SIZES {
        setups.push(long_conversation(llm, size).await);
    }
    // Let the store's background work after that many writes settle first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Sizes take turns sample by sample, so the disk's moods fall on both alike.
    let mut records = vec![Vec::new(); setups.len()];
    let mut starts = vec![Vec::new(); setups.len()];
    for i in 0..HISTORY_SAMPLES {
        for (n, (_dir, backend, conversation)) in setups.iter().enumerate() {
            let input =
                UserInput { text: format!("listened {i}"), id: Some(format!("msg-listened-{n}-{i}")), first: false };
            let started = Instant::now();
            backend.record_message(conversation, input).await.expect("record");
            records[n].push(started.elapsed());
        }
        for (n, (_dir, backend, conversation)) in setups.iter().enumerate() {
            let before = llm.requests().len();
            let mut session = backend.resume_session(conversation, SessionOptions::default()).await.expect("resume");
            let started = Instant::now();
            session.send(format!("question {i}")).expect("send");
            while session.next().await.is_some() {}
            let request = llm.requests().into_iter().nth(before).expect("the turn called the model");
            starts[n].push(request.received_at.duration_since(started));
        }
    }
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    HISTORY_SIZES
        .iter()
        .zip(records.into_iter().zip(starts))
        .map(|(size, (records, starts))| (*size, median(records), median(starts)))
        .collect()
}

/// A store with one conversation of `size` entries, all but the kept tail
/// summarised by a compaction, as a long conversation is.
async fn long_conversation(llm: &FakeLlm, size: usize) -> (tempfile::TempDir, EmbeddedBackend, String) {
    use switchboard::agent::{AgentBackend, SessionOptions};
    use switchboard::store::{text_content, Entry, MessageBody};
    let dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("SWITCHBOARD_DATA_DIR", dir.path().join("data").display().to_string()),
        ("SWITCHBOARD_LLM__BASE_URL", llm.base_url()),
        ("SWITCHBOARD_LLM__MODEL", "fake-model".into()),
        ("SWITCHBOARD_AGENT__WORKDIR", dir.path().join("work").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings =
        config::load_with(&ConfigSource { file: None, file_required: false, env }, &[]).expect("settings").settings;
    let store: Arc<dyn Store> = switchboard::store::open(&settings).expect("store");
    let backend = EmbeddedBackend::new(store.clone(), settings);
    let agent = backend.default_agent().await.expect("agent");
    let session = backend.create_session(&agent.id, SessionOptions::default()).await.expect("session");
    let conversation = session.conversation_id().to_string();
    let mut parent: Option<String> = None;
    let mut first_kept = String::new();
    for i in 0..size {
        let body = if i % 2 == 0 {
            MessageBody::User { content: text_content(format!("message {i} with some words in it")) }
        } else {
            MessageBody::Assistant {
                content: text_content(format!("answer {i}, a little longer than the question")),
                tool_calls: Vec::new(),
                reasoning: None,
            }
        };
        let entry = Entry::new(parent.clone(), body);
        if i == size - KEPT_TAIL {
            first_kept = entry.id().to_string();
        }
        parent = Some(entry.id().to_string());
        store.append_entry(&conversation, &entry).expect("append");
    }
    let summary = serde_json::json!({"summary": "Earlier talk, summarised.", "first_kept_id": first_kept});
    let compaction = Entry::new(parent, MessageBody::Custom { kind: "compaction".into(), payload: summary });
    store.append_entry(&conversation, &compaction).expect("append");
    (dir, backend, conversation)
}

/// The daemon in this process with the fake channel: CHATS messages from CHATS
/// chats handed over one after another, as a poll loop would, without waiting for
/// answers, so every turn's writes load the store while later events are
/// journaled. Returns how long each `deliver` took, sorted.
async fn acknowledgements(llm: &FakeLlm, postgres: Option<String>) -> Acks {
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
    let store: Arc<dyn Store> = match postgres {
        Some(url) => {
            // The control socket still lives in the data directory.
            std::fs::create_dir_all(&settings.data_dir).unwrap();
            Arc::new(
                PgStore::open(&PgOptions { url, pool_size: 8, replicas: Default::default() }).expect("the database"),
            )
        }
        // The store the settings choose (SQLite, on a fresh directory).
        None => switchboard::store::open(&settings).expect("store"),
    };
    let backend = Arc::new(EmbeddedBackend::new(store.clone(), settings.clone()));
    let daemon =
        Daemon::start(Parts { settings, store, backend, expired: Vec::new() }, &registry).await.expect("start");
    let flushes_before = switchboard::metrics::global().flush_count();
    let writes_before = switchboard::metrics::global().write_count();
    let mut took = Vec::new();
    let started = Instant::now();
    for chat in 1..=CHATS {
        let delivered = fake.dm(&format!("{}", 2_000_000 + chat), &format!("ack probe {chat}")).await;
        delivered.result.expect("journaled");
        took.push(delivered.took);
    }
    let deadline = Instant::now() + DEADLINE;
    let sends =
        || fake.with_calls(|calls| calls.iter().filter(|c| c.op == switchboard_fakes::channel::Op::Send).count());
    while sends() < CHATS as usize {
        assert!(Instant::now() < deadline, "not every chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every durable flush of the store while these messages were journaled,
    // answered, stored for sending and marked sent.
    let flushes = switchboard::metrics::global().flush_count() - flushes_before;
    let writes = switchboard::metrics::global().write_count() - writes_before;
    let per_second = CHATS as f64 / started.elapsed().as_secs_f64();
    daemon.stop().await;
    took.sort();
    Acks {
        took,
        flushes_per_message: flushes as f64 / CHATS as f64,
        writes_per_message: writes as f64 / CHATS as f64,
        per_second,
    }
}

/// What the in-process run measured.
struct Acks {
    /// Each `deliver`, sorted.
    took: Vec<Duration>,
    /// Store flushes per message, from arrival to reply sent.
    flushes_per_message: f64,
    /// Durable store writes per message (each waited for a flush; group commit
    /// lets several share one).
    writes_per_message: f64,
    /// Messages answered per second, from the first handed over to the last reply sent.
    per_second: f64,
}

async fn start(
    llm: &FakeLlm,
    telegram: &FakeTelegram,
    dir: &std::path::Path,
    extra: &[(&str, String)],
) -> tokio::process::Child {
    start_under(llm, telegram, dir, &dm_run::wrapper(), extra).await
}

/// [`start`] with the daemon run under `wrapper` (a program and its arguments).
async fn start_under(
    llm: &FakeLlm,
    telegram: &FakeTelegram,
    dir: &std::path::Path,
    wrapper: &[String],
    extra: &[(&str, String)],
) -> tokio::process::Child {
    let polls = telegram.calls_of("getupdates").len();
    let mut settings = vec![
        ("SWITCHBOARD_TELEGRAM__TOKEN", telegram.token()),
        ("SWITCHBOARD_TELEGRAM__API_URL", telegram.api_url()),
        ("SWITCHBOARD_TELEGRAM__DM_POLICY", "open".to_string()),
    ];
    settings.extend_from_slice(extra);
    dm_run::spawn_serve_under(wrapper, llm, dir, &settings, || telegram.calls_of("getupdates").len() > polls).await
}

/// The same runs on PostgreSQL (a local server that syncs every commit to disk):
/// the in-process acknowledgements and rate, then the Telegram latency and burst.
async fn print_postgres(llm: &FakeLlm) {
    let Acks { took, per_second, .. } =
        acknowledgements(llm, Some(switchboard_fakes::postgres::durable_database())).await;
    let ack = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!("on PostgreSQL (local server, fsync on):");
    println!(
        "  {per_second:.0} messages per second in process; acknowledgement p50 {:.2} ms, p99 {:.2} ms",
        ack(0.50),
        ack(0.99)
    );
    let telegram = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = [
        ("SWITCHBOARD_STORE__KIND", "postgres".to_string()),
        ("SWITCHBOARD_STORE__POSTGRES__URL", switchboard_fakes::postgres::durable_database()),
    ];
    let mut daemon = start(llm, &telegram, dir.path(), &store).await;
    let latencies = latency_samples(&telegram).await;
    let burst = answer_burst(&telegram, 1..=CHATS).await;
    let pid = daemon.id().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(pid);
    // The data is in the database, not the daemon.
    more_conversations(&telegram).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let many_rss = rss_kib(pid);
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!("  messages per second ({CHATS} chats, burst, Telegram): {:.0}", CHATS as f64 / burst.as_secs_f64());
    println!("  added latency p50 {:.1} ms, p99 {:.1} ms", p(0.50), p(0.99));
    println!(
        "  daemon RSS after {CHATS} conversations: {:.1} MiB; after {MANY_CHATS}: {:.1} MiB",
        rss as f64 / 1024.0,
        many_rss as f64 / 1024.0
    );
    print_replicas(llm).await;
}

/// Two replicas on one fresh database (one polls Telegram, the other stands by):
/// what the chat leases cost a message.
async fn print_replicas(llm: &FakeLlm) {
    let telegram = FakeTelegram::start().await;
    let (dir, standby_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = [
        ("SWITCHBOARD_STORE__KIND", "postgres".to_string()),
        ("SWITCHBOARD_STORE__POSTGRES__URL", switchboard_fakes::postgres::durable_database()),
        ("SWITCHBOARD_STORE__POSTGRES__REPLICAS", "true".to_string()),
    ];
    let mut polling = start(llm, &telegram, dir.path(), &store).await;
    let mut settings = vec![
        ("SWITCHBOARD_TELEGRAM__TOKEN", telegram.token()),
        ("SWITCHBOARD_TELEGRAM__API_URL", telegram.api_url()),
        ("SWITCHBOARD_TELEGRAM__DM_POLICY", "open".to_string()),
    ];
    settings.extend_from_slice(&store);
    let mut standby = dm_run::spawn_serve(llm, standby_dir.path(), &settings, || true).await;
    let latencies = latency_samples(&telegram).await;
    let burst = answer_burst(&telegram, 1..=CHATS).await;
    for daemon in [&mut polling, &mut standby] {
        let _ = daemon.start_kill();
        let _ = daemon.wait().await;
    }
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    println!("on PostgreSQL with two replicas (one polling Telegram, one standing by):");
    println!("  messages per second ({CHATS} chats, burst, Telegram): {:.0}", CHATS as f64 / burst.as_secs_f64());
    println!("  added latency p50 {:.1} ms, p99 {:.1} ms", p(0.50), p(0.99));
}

/// Latency: one message at a time from new chats (which the burst then talks in
/// again), so no queueing is measured; sorted. Returns once those chats may be
/// written to again (their pacing slot has passed).
async fn latency_samples(telegram: &FakeTelegram) -> Vec<Duration> {
    let latencies = latency_samples_of(telegram, 1..=LATENCY_SAMPLES).await;
    tokio::time::sleep(PACE_PASSED).await;
    latencies
}

/// One message at a time from each of `chats`, each sent once the one before was
/// answered; how long each took, shortest first.
async fn latency_samples_of(telegram: &FakeTelegram, chats: std::ops::RangeInclusive<i64>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for chat in chats {
        let i = chat - 1;
        let mut replies = Replies::from_now(telegram);
        let sent = replies.after;
        telegram.send_dm(chat, &format!("latency probe {i}"));
        latencies.push(replies.first_to(telegram, chat, Duration::from_secs(30)).await.duration_since(sent));
    }
    latencies.sort();
    latencies
}

/// Conversations up to MANY_CHATS, a thousand at a time: memory should follow the
/// configuration and the load, not how many conversations there were.
async fn more_conversations(telegram: &FakeTelegram) {
    for start in (CHATS + 1..=MANY_CHATS).step_by(CHATS as usize) {
        answer_burst(telegram, start..=(start + CHATS - 1).min(MANY_CHATS)).await;
    }
}

/// One message from each of `chats` at once; how long until every one was
/// answered: until the last first reply reached the fake (when it arrived
/// there, not when the benchmark next looked, up to 20 ms later).
async fn answer_burst(telegram: &FakeTelegram, chats: std::ops::RangeInclusive<i64>) -> Duration {
    let mut replies = Replies::from_now(telegram);
    let started = replies.after;
    for chat in chats.clone() {
        telegram.send_dm(chat, &format!("hello from chat {chat}"));
    }
    let deadline = started + DEADLINE;
    loop {
        let replied = replies.read(telegram);
        if chats.clone().all(|c| replied.contains_key(&c)) {
            let last = chats.clone().filter_map(|c| replied.get(&c)).max().copied().unwrap_or(started);
            return last.duration_since(started);
        }
        assert!(Instant::now() < deadline, "not every chat was answered within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The chats the bot sent a message to since a moment, read from the fake's
/// calls as they come: each call is looked at once, however often the benchmark
/// asks (it must not take the CPU it measures, nor hold the fake's lock long).
struct Replies {
    after: Instant,
    /// How many of the fake's calls were looked at.
    seen: usize,
    /// Each chat replied to, with when it first was.
    chats: HashMap<i64, Instant>,
}

impl Replies {
    /// From now on. A call made since has its place after the calls counted here
    /// (it is recorded after its arrival time, which is later than this moment).
    fn from_now(telegram: &FakeTelegram) -> Replies {
        let seen = telegram.with_calls(|calls| calls.len());
        Replies { after: Instant::now(), seen, chats: HashMap::new() }
    }

    /// Every chat replied to so far.
    fn read(&mut self, telegram: &FakeTelegram) -> &HashMap<i64, Instant> {
        telegram.with_calls(|calls| {
            for c in calls.get(self.seen..).unwrap_or_default() {
                if c.method == "sendmessage" && c.at >= self.after {
                    if let Some(chat) = c.params.get("chat_id").and_then(Value::as_i64) {
                        self.chats.entry(chat).or_insert(c.at);
                    }
                }
            }
            self.seen = calls.len();
        });
        &self.chats
    }

    /// When the first reply reached `chat`, waiting up to `timeout` for it.
    async fn first_to(&mut self, telegram: &FakeTelegram, chat: i64, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.read(telegram).get(&chat) {
                return *at;
            }
            assert!(Instant::now() < deadline, "chat {chat} got no reply within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// CPU time a process (`None`: this one) has used so far, in its own code and in
/// the kernel's, from /proc.
fn cpu_time(pid: Option<u32>) -> (Duration, Duration) {
    let path = pid.map_or_else(|| "/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the
    // 12th and 13th, in clock ticks.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0) as f64;
    (Duration::from_secs_f64(ticks(11) / per_second), Duration::from_secs_f64(ticks(12) / per_second))
}

/// Context switches of a process's threads so far (those still running), from
/// /proc: each time one of them stopped running, waiting or pushed off its core.
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// CPU used so far, or per message of a burst of CHATS: the daemon's in its own
/// code and the kernel's on its behalf, and this process's (the fakes and the
/// benchmark's own checking); the daemon's context switches; and how the whole
/// machine's time went over the burst (not per message).
struct CpuUsed {
    daemon: (Duration, Duration),
    bench: Duration,
    switches: f64,
    machine: MachineTicks,
}

/// The whole machine's CPU time, in clock ticks summed over its cores, from
/// /proc/stat: doing anything, idle, idle while a disk write was waited for, and
/// taken by the host for its other guests (steal). A burst in an hour when the
/// host takes a tenth of the time measures a tenth slower or more.
#[derive(Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    idle: u64,
    disk_wait: u64,
    stolen: u64,
}

impl MachineTicks {
    fn now() -> MachineTicks {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return MachineTicks::default() };
        // user nice system idle iowait irq softirq steal ...
        let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
        MachineTicks { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3), disk_wait: at(4), stolen: at(7) }
    }

    fn since(&self, before: &MachineTicks) -> MachineTicks {
        MachineTicks {
            busy: self.busy.saturating_sub(before.busy),
            idle: self.idle.saturating_sub(before.idle),
            disk_wait: self.disk_wait.saturating_sub(before.disk_wait),
            stolen: self.stolen.saturating_sub(before.stolen),
        }
    }
}

impl CpuUsed {
    fn now(daemon: u32) -> CpuUsed {
        let (user, kernel) = cpu_time(None);
        CpuUsed {
            daemon: cpu_time(Some(daemon)),
            bench: user + kernel,
            switches: context_switches(daemon) as f64,
            machine: MachineTicks::now(),
        }
    }

    /// Per message of a burst of `messages`.
    fn per_message_since(&self, before: &CpuUsed, messages: i64) -> CpuUsed {
        let per = |now: Duration, then: Duration| now.saturating_sub(then) / messages as u32;
        CpuUsed {
            daemon: (per(self.daemon.0, before.daemon.0), per(self.daemon.1, before.daemon.1)),
            bench: per(self.bench, before.bench),
            switches: (self.switches - before.switches).max(0.0) / messages as f64,
            machine: self.machine.since(&before.machine),
        }
    }

    fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (user, kernel) = self.daemon;
        println!(
            "  CPU per message in the burst: daemon {:.2} ms ({:.2} its own, {:.2} the kernel's), fakes and benchmark {:.2} ms; the daemon's context switches {:.1} a message",
            ms(user + kernel),
            ms(user),
            ms(kernel),
            ms(self.bench),
            self.switches
        );
        let MachineTicks { busy, idle, disk_wait, stolen } = self.machine;
        let all = (busy + idle + disk_wait + stolen).max(1) as f64;
        let share = |ticks: u64| 100.0 * ticks as f64 / all;
        println!(
            "  the machine's cores in the burst: {:.0}% busy, {:.0}% idle, {:.0}% idle waiting for the disk, {:.0}% taken by the host",
            share(busy),
            share(idle),
            share(disk_wait),
            share(stolen)
        );
    }
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

/// The daemon's counters, from its `/metrics` (the operator endpoint).
struct DaemonCounts {
    flushes: f64,
    writes: f64,
    turns: f64,
    /// Seconds the turns held their places (from a place to the agent's result).
    turn_seconds: f64,
}

impl DaemonCounts {
    /// Reads them from the operator endpoint at `address`.
    async fn scrape(address: &str) -> DaemonCounts {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client");
        let response = client.get(format!("http://{address}/metrics")).send().await.expect("the operator endpoint");
        let text = response.text().await.expect("the metrics");
        // The sum over every label set of the sample `name` (the latency samples
        // have run turns, so every one of these is there).
        let total = |name: &str| -> f64 {
            let values: Vec<f64> = text
                .lines()
                .filter(|line| line.split(['{', ' ']).next() == Some(name))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .collect();
            assert!(!values.is_empty(), "no {name} in the daemon's metrics");
            values.iter().sum()
        };
        DaemonCounts {
            flushes: total("switchboard_store_flush_duration_seconds_count"),
            writes: total("switchboard_store_write_duration_seconds_count"),
            turns: total("switchboard_turn_duration_seconds_count"),
            turn_seconds: total("switchboard_turn_duration_seconds_sum"),
        }
    }

    fn since(&self, before: &DaemonCounts) -> DaemonCounts {
        DaemonCounts {
            flushes: self.flushes - before.flushes,
            writes: self.writes - before.writes,
            turns: self.turns - before.turns,
            turn_seconds: self.turn_seconds - before.turn_seconds,
        }
    }

    /// Prints them per message of a burst of `messages` that took `took`.
    fn print(&self, messages: i64, took: Duration) {
        println!(
            "  the daemon's store in the burst: {:.1} writes and {:.2} flushes a message ({:.1} writes a flush)",
            self.writes / messages as f64,
            self.flushes / messages as f64,
            self.writes / self.flushes.max(1.0)
        );
        println!(
            "  its turns: {:.0}, each {:.1} ms on average from its place to its result, {:.1} at a time",
            self.turns,
            1000.0 * self.turn_seconds / self.turns.max(1.0),
            self.turn_seconds / took.as_secs_f64()
        );
    }
}
