//! The operator's view of a running `serve`: `/healthz`, `/readyz` and `/metrics`
//! on `[server] listen`, a deaf channel caught by readiness, the watchdog and
//! `/status`, systemd's notifications, `switchboard status`, and JSON logs that
//! hold no message text or secret.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::json;
use switchboard_fakes::llm::Reply;
use switchboard_fakes::{FakeSlack, FakeTelegram};

const WAIT: Duration = Duration::from_secs(20);
/// The long-poll timeout the tests run Telegram with.
const POLL_SECS: u64 = 2;
const ADMIN: i64 = 777_000_123;
const SLACK_ADMIN: &str = "U0000ADMIN";
const GENERAL: &str = "C0000GENERAL";

/// A harness for Telegram with the operator's endpoints on a free port.
async fn setup() -> (Harness, FakeTelegram, String) {
    let mut h = Harness::new().await;
    let telegram = FakeTelegram::start().await;
    h.with_telegram(&telegram);
    h.set("SWITCHBOARD_TELEGRAM__ADMINS", &ADMIN.to_string());
    h.set("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", &POLL_SECS.to_string());
    let address = format!("127.0.0.1:{}", switchboard_fakes::free_port());
    h.set("SWITCHBOARD_SERVER__LISTEN", &address);
    (h, telegram, format!("http://{address}"))
}

async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    match client.get(url).send().await {
        Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Waits until `url` answers `status`; returns how long that took.
async fn wait_status(url: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (got, body) = get(url).await;
        if got == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{url} did not answer {status} within {within:?}: {got} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_reply(tg: &FakeTelegram, chat: i64, needle: &str) {
    let n = needle.to_string();
    tg.wait_until(&format!("a reply containing {needle:?}"), WAIT, move |t| {
        t.messages_in(chat).iter().any(|m| m.plain_text.contains(&n))
    })
    .await;
}

/// The value of the first sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_telegram_fails_readiness_keeps_liveness_says_so_and_recovers() {
    let (mut h, telegram, base) = setup().await;
    let slack = FakeSlack::start().await;
    slack.add_channel(GENERAL);
    h.with_slack(&slack);
    h.set("SWITCHBOARD_SLACK__ADMINS", SLACK_ADMIN);
    let _d = h.serve(&telegram).await;
    slack.wait_until("the Slack socket", WAIT, |s| s.connections() >= 1).await;
    wait_status(&format!("{base}/readyz"), 200, WAIT).await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let status = h.run(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("ready") && status.stdout.contains("telegram: polling"), "{}", status.stdout);

    // The long poll goes silent (a connection that died without a reset).
    telegram.set_polls_silent(true);
    let took = wait_status(&format!("{base}/readyz"), 503, Duration::from_secs(POLL_SECS * 2 + 3)).await;
    println!("readiness failed {took:?} after the polls went silent (bound: {} s)", POLL_SECS * 2);
    assert!(took <= Duration::from_secs(POLL_SECS * 2) + Duration::from_millis(1500), "took {took:?}");
    let (_, body) = get(&format!("{base}/readyz")).await;
    assert!(body.contains("telegram: not receiving"), "{body}");
    assert!(body.contains("slack: receiving") && body.contains("store: ok"), "{body}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200, "liveness never depends on a channel");
    let status = h.run(&["status"]).await;
    assert!(status.stdout.contains("NOT READY") && status.stdout.contains("not receiving"), "{}", status.stdout);
    assert_eq!(status.code, 1, "not ready is a failure for scripts");
    // In chat, on the channel that still hears, /status says the same.
    slack.slash(GENERAL, SLACK_ADMIN, "/switchboard", "status");
    slack
        .wait_until("a /status naming the deaf channel", WAIT, |s| {
            s.bot_messages(GENERAL).iter().any(|m| m.text.contains("telegram") && m.text.contains("not receiving"))
        })
        .await;
    let id = telegram.send_dm(ADMIN, "are you there?");

    // Telegram answers again: the poller notices by itself and catches up.
    telegram.set_polls_silent(false);
    h.llm.push(Reply::text("Back again."));
    let took = wait_status(&format!("{base}/readyz"), 200, Duration::from_secs(POLL_SECS + 10)).await;
    println!("ready again {took:?} after Telegram answered again");
    wait_reply(&telegram, ADMIN, "Back again.").await;
    assert!(telegram.confirmed_offset() > id, "the update that came while deaf was received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_a_conversation_and_hold_nothing_from_it() {
    let (h, telegram, base) = setup().await;
    let _d = h.serve(&telegram).await;
    wait_status(&format!("{base}/readyz"), 200, WAIT).await;
    let (code, before) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    assert!(before.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");

    h.llm.push(Reply::tool_call("memory_insert", json!({"label": "human", "new_str": "Collects zebra-stamp-0412."})));
    h.llm.push(Reply::text("Noted, quokka-answer-5521."));
    telegram.send_dm(ADMIN, "remember my secret hobby walrus-text-9931");
    wait_reply(&telegram, ADMIN, "quokka-answer-5521").await;
    let (_, after) = get(&format!("{base}/metrics")).await;

    for secret in ["walrus-text-9931", "zebra-stamp-0412", "quokka-answer-5521", &ADMIN.to_string(), &telegram.token()]
    {
        assert!(!after.contains(secret), "the metrics hold {secret:?}");
    }
    let moved = |series: &str| {
        let was = sample(&before, series).unwrap_or(0.0);
        let now = sample(&after, series).unwrap_or_else(|| panic!("no {series} in:\n{after}"));
        assert!(now > was, "{series} did not move: {was} -> {now}");
    };
    moved(r#"switchboard_inbound_events_total{channel="telegram",kind="message",outcome="accepted"}"#);
    moved(r#"switchboard_turns_total{outcome="completed"}"#);
    moved(r#"switchboard_model_requests_total{outcome="ok",error="none"}"#);
    moved(r#"switchboard_tool_decisions_total{tool="memory_insert",decision="#);
    moved(r#"switchboard_outbox_deliveries_total{channel="telegram",outcome="delivered"}"#);
    moved("switchboard_store_flush_duration_seconds_count");
    moved("switchboard_store_write_duration_seconds_count");
    assert_eq!(sample(&after, r#"switchboard_channel_ready{channel="telegram"}"#), Some(1.0));
    assert!(sample(&after, "switchboard_resident_memory_bytes").unwrap() > 1e6);
    assert!(
        sample(&after, r#"switchboard_channel_last_ingress_timestamp_seconds{channel="telegram"}"#).unwrap() > 1.7e9
    );
    assert_eq!(sample(&after, "switchboard_journal_pending"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_then_the_watchdog_only_while_receiving_then_stopping() {
    let (mut h, telegram, _) = setup().await;
    let socket_path = h.path("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    h.set("NOTIFY_SOCKET", socket_path.to_str().unwrap());
    h.set("WATCHDOG_USEC", "1000000");
    let d = h.serve(&telegram).await;
    let heard = |systemd: &UnixDatagram, for_: Duration| {
        let mut out = Vec::new();
        let started = Instant::now();
        let mut buffer = [0u8; 512];
        while started.elapsed() < for_ {
            if let Ok(n) = systemd.recv(&mut buffer) {
                out.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
        }
        out
    };
    let first = heard(&systemd, Duration::from_secs(2));
    assert!(first.first().is_some_and(|m| m.starts_with("READY=1")), "{first:?}");
    assert!(first.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, "petted every half interval: {first:?}");

    telegram.set_polls_silent(true);
    // Within twice the poll timeout the channel counts as deaf; after that, no more pets.
    let _ = heard(&systemd, Duration::from_secs(POLL_SECS * 2 + 1));
    let deaf = heard(&systemd, Duration::from_secs(2));
    assert!(!deaf.iter().any(|m| m == "WATCHDOG=1"), "a deaf daemon is not kept alive: {deaf:?}");
    telegram.set_polls_silent(false);
    let mut back = Vec::new();
    let started = Instant::now();
    while !back.iter().any(|m: &String| m == "WATCHDOG=1") && started.elapsed() < Duration::from_secs(15) {
        back.extend(heard(&systemd, Duration::from_millis(500)));
    }
    assert!(back.iter().any(|m| m == "WATCHDOG=1"), "petted again once receiving: {back:?}");

    assert_eq!(d.stop().await, 0);
    let last = heard(&systemd, Duration::from_millis(500));
    assert!(last.iter().any(|m| m.starts_with("STOPPING=1")), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_log_is_one_object_a_line_without_message_text_or_secrets() {
    let (mut h, telegram, _) = setup().await;
    h.set("SWITCHBOARD_LOG__FORMAT", "json");
    let d = h.serve(&telegram).await;
    h.llm.push(Reply::tool_call("memory_insert", json!({"label": "human", "new_str": "Owns heron-fact-2231."})));
    h.llm.push(Reply::text("Got it, ibis-reply-6610."));
    telegram.send_dm(ADMIN, "note that I own heron-fact-2231 and say ibis");
    wait_reply(&telegram, ADMIN, "ibis-reply-6610").await;
    // A command too: its log lines hold no text either.
    telegram.send_dm(ADMIN, "/status");
    wait_reply(&telegram, ADMIN, "Model:").await;
    let log = d.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(object["level"].is_string() && object["fields"].is_object(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"serving\"")), "{log}");
    for secret in ["heron-fact-2231", "ibis-reply-6610", "note that I own", &telegram.token()] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_a_daemon_says_so_and_bad_server_settings_are_refused() {
    let (mut h, _telegram, _) = setup().await;
    let status = h.run(&["status"]).await;
    assert_eq!(status.code, 3, "{}", status.stderr);
    assert!(status.stdout.contains("not running"), "{}", status.stdout);
    h.set("SWITCHBOARD_SERVER__LISTEN", "localhost-ish");
    h.set("SWITCHBOARD_LOG__FORMAT", "xml");
    let check = h.run(&["check"]).await;
    assert_ne!(check.code, 0);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(said.contains("server.listen") && said.contains("log.format"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_turn_finish_and_its_reply_go_out() {
    let (h, telegram, _) = setup().await;
    let d = h.serve(&telegram).await;
    h.llm.push(Reply::text("Finished before stopping.").delayed(Duration::from_millis(1500)));
    telegram.send_dm(ADMIN, "a slow question");
    let llm = &h.llm;
    let started = Instant::now();
    while llm.requests().is_empty() {
        assert!(started.elapsed() < WAIT, "the model was never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    assert_eq!(d.stop().await, 0);
    println!("stopped {:?} after SIGTERM, the turn finished", stopping.elapsed());
    let replies = |t: &FakeTelegram| t.messages_in(ADMIN).iter().filter(|m| m.plain_text.contains("Finished")).count();
    assert_eq!(replies(&telegram), 1, "the running turn's reply went out before the exit");

    // Nothing is left to resume: a restart answers nothing twice.
    let _d = h.serve(&telegram).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(replies(&telegram), 1);
    assert_eq!(h.llm.requests().len(), 1, "the finished turn is not run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_longer_than_the_grace_is_resumed_once_at_the_next_start() {
    let (mut h, telegram, _) = setup().await;
    h.set("SWITCHBOARD_GATEWAY__STOP_GRACE_SECS", "1");
    let d = h.serve(&telegram).await;
    h.llm.push(Reply::text("Too late.").delayed(Duration::from_secs(8)));
    h.llm.push(Reply::text("Resumed after the restart."));
    telegram.send_dm(ADMIN, "a very slow question");
    let started = Instant::now();
    while h.llm.requests().is_empty() {
        assert!(started.elapsed() < WAIT, "the model was never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    assert_eq!(d.stop().await, 0);
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(6), "the grace bounds the stop: {took:?}");
    assert!(telegram.messages_in(ADMIN).is_empty(), "nothing was answered yet");

    let _d = h.serve(&telegram).await;
    wait_reply(&telegram, ADMIN, "Resumed after the restart.").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = telegram.messages_in(ADMIN).into_iter().map(|m| m.plain_text).collect();
    assert_eq!(texts, ["Resumed after the restart."], "answered once, by the resumed turn");
}
