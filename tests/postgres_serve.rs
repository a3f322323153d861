//! `store.kind = "postgres"` end to end: the real `serve` on a PostgreSQL database
//! (started for the test run) with the fake Telegram, killed with SIGKILL and
//! restarted without losing or repeating an answer; `check` when the database
//! cannot be reached.

mod common;

use std::time::Duration;

use common::Harness;
use switchboard_fakes::{FakeTelegram, Fallback};

const WAIT: Duration = Duration::from_secs(20);

/// How many messages in `chat` contain `needle`.
fn count(telegram: &FakeTelegram, chat: i64, needle: &str) -> usize {
    telegram.messages_in(chat).iter().filter(|m| m.plain_text.contains(needle)).count()
}

async fn wait_reply(telegram: &FakeTelegram, chat: i64, needle: &str) {
    let n = needle.to_string();
    telegram
        .wait_until(&format!("a reply containing {needle:?}"), WAIT, move |t| {
            t.messages_in(chat).iter().any(|m| m.plain_text.contains(&n))
        })
        .await;
}

/// A harness for Telegram (open DMs, echoing model) with a fresh database set as
/// `store.postgres.url` (the store kind is left to the test).
async fn setup() -> (Harness, FakeTelegram) {
    let mut h = Harness::new().await;
    h.llm.set_fallback(Fallback::Echo);
    let telegram = FakeTelegram::start().await;
    h.with_telegram(&telegram);
    h.set("SWITCHBOARD_TELEGRAM__DM_POLICY", "open");
    h.set("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", "1");
    h.set("SWITCHBOARD_STORE__POSTGRES__URL", &switchboard_fakes::postgres::database());
    (h, telegram)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_answers_each_message_once_across_a_kill9() {
    let (mut h, telegram) = setup().await;
    h.set("SWITCHBOARD_STORE__KIND", "postgres");

    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "first message");
    wait_reply(&telegram, 1, "echo: first message").await;
    // Several chats at once, and a kill while the model is still answering them.
    h.llm.set_chunk_delay(Duration::from_millis(300));
    for chat in 2..=6 {
        telegram.send_dm(chat, &format!("message from {chat}"));
    }
    h.llm.wait_for_requests(6, WAIT).await;
    daemon.kill9().await;
    assert_eq!(count(&telegram, 2, "echo: message from"), 0, "killed before any answer");
    h.llm.set_chunk_delay(Duration::ZERO);

    let daemon = h.serve(&telegram).await;
    for chat in 2..=6 {
        wait_reply(&telegram, chat, &format!("echo: message from {chat}")).await;
    }
    // The conversation lives in the database: the restarted daemon continues it.
    telegram.send_dm(1, "second message");
    wait_reply(&telegram, 1, "echo: second message").await;
    let last = h.llm.requests().into_iter().rev().find(|r| r.all_text().contains("second message")).unwrap();
    assert!(last.all_text().contains("first message"), "the earlier turn is in the model's context");
    tokio::time::sleep(Duration::from_millis(700)).await;
    for chat in 2..=6 {
        assert_eq!(count(&telegram, chat, "echo: message from"), 1, "chat {chat} answered once");
    }
    assert_eq!(count(&telegram, 1, "echo: first message"), 1);
    assert!(!daemon.log().contains("storage error"), "{}", daemon.log());
    assert_eq!(daemon.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_plainly_when_the_database_cannot_be_reached() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_STORE__KIND", "postgres");
    let url = switchboard_fakes::postgres::unreachable_url().replace("switchboard@", "switchboard:pw-s3cret@");
    h.set("SWITCHBOARD_STORE__POSTGRES__URL", &url);
    let out = h.run(&["check"]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Store: PostgreSQL: NOT usable: cannot reach the PostgreSQL database nothing on 127.0.0.1:"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("pw-s3cret") && !out.stderr.contains("pw-s3cret"), "the password was shown");

    // And `serve` refuses to start, saying the same.
    let out = h.run(&["serve"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("cannot reach the PostgreSQL database"), "{}", out.stderr);
    assert!(!out.stderr.contains("pw-s3cret"), "the password was shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_database_without_taking_or_changing_it() {
    let (mut h, telegram) = setup().await;
    h.set("SWITCHBOARD_STORE__KIND", "postgres");
    let out = h.run(&["check"]).await;
    assert!(out.stdout.contains("Store: PostgreSQL, t_"), "{}", out.stdout);
    assert!(out.stdout.contains(": reachable, not set up yet (serve creates it), not in use"), "{}", out.stdout);
    // `check` changed nothing: serve sets it up, and check sees it held.
    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "hello");
    wait_reply(&telegram, 1, "echo: hello").await;
    let out = h.run(&["check"]).await;
    assert!(out.stdout.contains(": reachable, schema 2, in use by a running switchboard"), "{}", out.stdout);
    assert!(out.stdout.contains("kv:"), "its parts are listed: {}", out.stdout);
    assert_eq!(daemon.stop().await, 0);
    let out = h.run(&["check"]).await;
    assert!(out.stdout.contains(": reachable, schema 2, not in use"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_deployment_moves_to_sqlite_then_postgres_and_back_without_loss() {
    let (mut h, telegram) = setup().await;

    // An earlier version's deployment, on sled: a conversation.
    h.set("SWITCHBOARD_STORE__KIND", "sled");
    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "my favourite drink is tea");
    wait_reply(&telegram, 1, "echo: my favourite drink is tea").await;
    assert_eq!(daemon.stop().await, 0);

    // Upgraded, with no store named: it finds its sled store and goes on there.
    h.unset("SWITCHBOARD_STORE__KIND");
    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "I live by the sea");
    wait_reply(&telegram, 1, "echo: I live by the sea").await;
    assert_eq!(daemon.stop().await, 0);
    let asked = h.llm.requests().into_iter().rev().find(|r| r.all_text().contains("I live by the sea")).unwrap();
    assert!(asked.all_text().contains("my favourite drink is tea"), "the sled store was used");

    // Moved to SQLite in the same data directory, which is used from then on.
    let out = h.run(&["store", "migrate", "--from", "sled", "--to", "sqlite"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Copied and compared: 1 agent(s)"), "{}", out.stdout);
    let again = h.run(&["store", "migrate", "--from", "sled", "--to", "sqlite"]).await;
    assert_ne!(again.code, 0, "a second move into the same directory is refused");
    assert!(again.stderr.contains("already holds a sqlite store"), "{}", again.stderr);
    let out = h.run(&["check"]).await;
    assert!(out.stdout.contains("Data directory (sqlite store)"), "{}", out.stdout);

    let out = h.run(&["store", "migrate", "--from", "sqlite", "--to", "postgres"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Copied and compared: 1 agent(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("SWITCHBOARD_STORE__KIND=postgres"), "{}", out.stdout);
    // Into a store that holds something already: refused, nothing merged.
    let again = h.run(&["store", "migrate", "--from", "sqlite", "--to", "postgres"]).await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("the target store is not empty"), "{}", again.stderr);

    // On PostgreSQL: the same chat continues the same conversation.
    h.set("SWITCHBOARD_STORE__KIND", "postgres");
    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "what do I drink?");
    wait_reply(&telegram, 1, "echo: what do I drink?").await;
    assert_eq!(daemon.stop().await, 0);
    let asked = h.llm.requests().into_iter().rev().find(|r| r.all_text().contains("what do I drink?")).unwrap();
    assert!(asked.all_text().contains("I live by the sea"), "the history came along");

    // And back, into a new data directory.
    h.set("SWITCHBOARD_STORE__KIND", "sled");
    h.set("SWITCHBOARD_DATA_DIR", &h.path("data-again").display().to_string());
    let out = h.run(&["store", "migrate", "--from", "postgres", "--to", "sled"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let daemon = h.serve(&telegram).await;
    telegram.send_dm(1, "and before that?");
    wait_reply(&telegram, 1, "echo: and before that?").await;
    assert_eq!(daemon.stop().await, 0);
    let asked = h.llm.requests().into_iter().rev().find(|r| r.all_text().contains("and before that?")).unwrap();
    let text = asked.all_text();
    assert!(text.contains("my favourite drink is tea") && text.contains("what do I drink?"), "{text}");
    // Every message answered exactly once across the moves.
    for needle in [
        "echo: my favourite drink is tea",
        "echo: I live by the sea",
        "echo: what do I drink?",
        "echo: and before that?",
    ] {
        assert_eq!(count(&telegram, 1, needle), 1, "{needle}");
    }
}
