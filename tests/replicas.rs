//! Replicas: two real `serve` processes on one PostgreSQL database (started for
//! the test run) with the fake Telegram, which counts every getUpdates call that
//! overlaps another (two pollers). One replica is killed with SIGKILL at a seeded
//! random moment while several chats talk; the other takes over the poller and
//! the killed one's chats. A clean stop hands over at once.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use switchboard_fakes::slack::SlackMessage;
use switchboard_fakes::{FakeDiscord, FakeSlack, FakeTelegram, Fallback, Reply};

const TTL_MS: u64 = 2000;
const POLL_MS: u64 = 300;
const WAIT: Duration = Duration::from_secs(30);
/// A reply whose first copy went out this soon before a kill may have been sent
/// and not yet marked: Telegram's send-to-record window (as in `chaos.rs`).
const SEND_TO_RECORD: Duration = Duration::from_millis(500);

/// A harness for Telegram (open DMs, echoing model) whose daemons are replicas
/// on a fresh database, with short leases.
async fn setup(ttl_ms: u64) -> (Harness, FakeTelegram) {
    let mut h = Harness::new().await;
    let telegram = FakeTelegram::start().await;
    h.with_telegram(&telegram);
    h.set("SWITCHBOARD_TELEGRAM__DM_POLICY", "open");
    h.set("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", "1");
    // The chats talk longer than a guest may in a minute.
    h.set("SWITCHBOARD_TELEGRAM__GUEST_MESSAGES_PER_MINUTE", "0");
    as_replicas(&mut h, ttl_ms);
    (h, telegram)
}

/// An echoing model, and daemons that are replicas on a fresh database.
fn as_replicas(h: &mut Harness, ttl_ms: u64) {
    h.llm.set_fallback(Fallback::Echo);
    h.set("SWITCHBOARD_STORE__KIND", "postgres");
    h.set("SWITCHBOARD_STORE__POSTGRES__URL", &switchboard_fakes::postgres::database());
    h.set("SWITCHBOARD_STORE__POSTGRES__REPLICAS", "true");
    h.set("SWITCHBOARD_STORE__POSTGRES__LEASE_TTL_MS", &ttl_ms.to_string());
    h.set("SWITCHBOARD_STORE__POSTGRES__LEASE_RENEW_MS", &(ttl_ms / 4).to_string());
    h.set("SWITCHBOARD_STORE__POSTGRES__POLL_MS", &POLL_MS.to_string());
}

fn second_dir(h: &Harness) -> PathBuf {
    h.path("data-b")
}

/// How many messages in `chat` show `text`.
fn shown(telegram: &FakeTelegram, chat: i64, text: &str) -> usize {
    telegram.messages_in(chat).iter().filter(|m| m.plain_text.contains(text)).count()
}

fn message(chat: i64, n: usize) -> String {
    format!("msg-c{chat}-n{n}-end")
}

/// The replica that polls is killed with SIGKILL at a seeded random moment, the
/// other takes over, the killed one comes back as the new standby; a bounded
/// number of rounds (`SWITCHBOARD_REPLICA_KILLS`, 3 by default) while four chats
/// talk, each sending its next message once the last one was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicas_are_replaced_within_the_lease_and_every_message_is_answered() {
    let rounds: usize =
        std::env::var("SWITCHBOARD_REPLICA_KILLS").ok().and_then(|r| r.parse().ok()).unwrap_or(3).clamp(1, 20);
    let seed = common::chaos_seed();
    println!("replicas: {rounds} kills, seed {seed} (SWITCHBOARD_CHAOS_SEED={seed} repeats the kill times)");
    let mut random = common::Lcg(seed);
    let (h, telegram) = setup(TTL_MS).await;
    let dirs = [h.data_dir(), second_dir(&h)];

    // The first polls; the second, started after, stands by and never polls.
    let mut polling = (h.serve(&telegram).await, 0);
    let mut standing_by = (h.spawn_serve(Some(&dirs[1])), 1);
    standing_by.0.wait_log("standing by", WAIT).await;
    telegram.send_dm(1, "warm up");
    telegram.wait_until("the first answer", WAIT, |t| shown(t, 1, "echo: warm up") > 0).await;

    // Streamed slowly enough that a kill catches turns in flight.
    h.llm.set_chunk_delay(Duration::from_millis(40));
    const CHATS: i64 = 4;
    let per_chat = 3 + 2 * rounds;
    let telegram = Arc::new(telegram);
    let mut talkers = Vec::new();
    for chat in 10..10 + CHATS {
        let telegram = telegram.clone();
        talkers.push(tokio::spawn(async move {
            for n in 0..per_chat {
                let text = message(chat, n);
                telegram.send_dm(chat, &text);
                let echo = format!("echo: {text}");
                telegram.wait_until(&format!("an answer to {text}"), WAIT, move |t| shown(t, chat, &echo) > 0).await;
            }
        }));
    }
    let mut in_flight = Vec::new();
    let mut kills = Vec::new();
    for round in 0..rounds {
        let kill_after = Duration::from_millis(200 + random.below(1300));
        tokio::time::sleep(kill_after).await;
        let polls_before = telegram.calls_of("getupdates").len();
        let killed_at = tokio::time::Instant::now();
        let (killed, dir) = polling;
        killed.kill9().await;
        kills.push(std::time::Instant::now());
        // Each chat waits for an answer before it sends again: at most its first
        // unanswered message can have been under way.
        in_flight.extend((10..10 + CHATS).filter_map(|chat| {
            let n = (0..per_chat).find(|&n| shown(&telegram, chat, &format!("echo: {}", message(chat, n))) == 0)?;
            Some(message(chat, n))
        }));

        // The standby takes the poller within the lease's length and two polls.
        telegram.wait_until("the standby to poll", WAIT, move |t| t.calls_of("getupdates").len() > polls_before).await;
        let takeover = telegram.calls_of("getupdates")[polls_before].at.duration_since(killed_at.into_std());
        println!("replicas: round {round}: killed after {kill_after:?}; the standby polled {takeover:?} later");
        assert!(
            takeover <= Duration::from_millis(TTL_MS + 2 * POLL_MS),
            "takeover took {takeover:?}; its log:\n{}",
            standing_by.0.log()
        );
        // The killed one comes back, as the standby now.
        let restarted = h.spawn_serve(Some(&dirs[dir]));
        restarted.wait_log("standing by", WAIT).await;
        polling = std::mem::replace(&mut standing_by, (restarted, dir));
    }
    for talker in talkers {
        if talker.await.is_err() {
            let tail = |log: String| {
                log.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            };
            let calls: Vec<String> = telegram
                .calls()
                .into_iter()
                .rev()
                .take(30)
                .map(|c| format!("{} {:?} ago {}", c.method, c.at.elapsed(), c.params))
                .collect();
            panic!(
                "not every message was answered; polling replica:\n{}\nstandby:\n{}\nlast calls:\n{}",
                tail(polling.0.log()),
                tail(standing_by.0.log()),
                calls.join("\n")
            );
        }
    }

    // Every message answered, in order per chat; a second answer only for a
    // message in flight at a kill: not answered yet, or answered moments before
    // (sent, not yet marked: the platform window).
    let mut twice = Vec::new();
    let mut in_window = Vec::new();
    for chat in 10..10 + CHATS {
        let texts: Vec<String> = telegram.messages_in(chat).into_iter().map(|m| m.plain_text).collect();
        let mut last = None;
        for n in 0..per_chat {
            let echo = format!("echo: {}", message(chat, n));
            let at: Vec<usize> = texts.iter().enumerate().filter(|(_, t)| t.contains(&echo)).map(|(i, _)| i).collect();
            assert!(!at.is_empty(), "{echo} never shown");
            if at.len() > 1 {
                twice.push(message(chat, n));
                if common::first_sent_just_before(&telegram, chat, &echo, &kills, SEND_TO_RECORD) {
                    in_window.push(message(chat, n));
                }
            }
            assert!(last < Some(at[0]), "chat {chat}: answers out of order: {texts:?}");
            last = Some(at[0]);
        }
    }
    // Turns: each message's turn ran once, or again after a kill if it was in flight.
    let mut turns: BTreeMap<String, usize> = BTreeMap::new();
    for request in h.llm.requests() {
        let asked = request.unanswered_user_text();
        for chat in 10..10 + CHATS {
            for n in 0..per_chat {
                if asked.contains(&message(chat, n)) {
                    *turns.entry(message(chat, n)).or_default() += 1;
                }
            }
        }
    }
    let rerun: Vec<&String> = turns.iter().filter(|(_, &n)| n > 1).map(|(m, _)| m).collect();
    println!(
        "replicas: in flight at a kill {in_flight:?}; turns run again {rerun:?}; answered twice {twice:?}, \
         of them first sent just before a kill {in_window:?}"
    );
    for message in rerun {
        assert!(in_flight.contains(message), "{message}'s turn ran again but was not in flight at a kill");
    }
    for message in &twice {
        assert!(
            in_flight.contains(message) || in_window.contains(message),
            "{message} was answered twice but was not in flight at a kill"
        );
    }
    assert_eq!(telegram.concurrent_polls(), 0, "two replicas polled at once");
    for (daemon, _) in [polling, standing_by] {
        assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
        assert_eq!(daemon.stop().await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_start_together_and_a_clean_stop_hands_over_at_once() {
    // Leases far longer than the hand-over may take: only a release explains it.
    let ttl_ms = 20_000;
    let (h, telegram) = setup(ttl_ms).await;
    // Both set up the empty database at the same moment.
    let a = h.spawn_serve(None);
    let b = h.spawn_serve(Some(&second_dir(&h)));
    telegram.wait_until("a poller", WAIT, |t| !t.calls_of("getupdates").is_empty()).await;
    let (poller, standby, standby_dir) = tokio::select! {
        _ = b.wait_log("standing by", WAIT) => (a, b, second_dir(&h)),
        _ = a.wait_log("standing by", WAIT) => (b, a, h.data_dir()),
    };
    telegram.send_dm(1, "hello");
    telegram.wait_until("an answer", WAIT, |t| shown(t, 1, "echo: hello") == 1).await;
    // The standby is ready, and says why it does not poll.
    let status = h.run_with_env_data_dir(&standby_dir, &["status"]).await;
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains(": ready"), "{}", status.stdout);
    assert!(status.stdout.contains("telegram: standby: another replica receives for it"), "{}", status.stdout);

    // A process that is not a replica is refused while replicas run.
    let mut alone = Harness::new().await;
    alone.with_telegram(&telegram);
    for (key, value) in
        [("SWITCHBOARD_STORE__KIND", "postgres".to_string()), ("SWITCHBOARD_STORE__POSTGRES__URL", database_of(&h))]
    {
        alone.set(key, &value);
    }
    let refused = alone.run(&["serve"]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("in use by another switchboard process"), "{}", refused.stderr);

    let polls_before = telegram.calls_of("getupdates").len();
    let stopped_at = tokio::time::Instant::now();
    assert_eq!(poller.stop().await, 0);
    telegram.wait_until("the standby to poll", WAIT, move |t| t.calls_of("getupdates").len() > polls_before).await;
    let takeover = stopped_at.elapsed();
    println!("replicas: after a clean stop the standby polled within {takeover:?}");
    assert!(takeover < Duration::from_millis(ttl_ms / 2), "the stop did not release the poller's lease");
    telegram.send_dm(1, "still there?");
    telegram.wait_until("an answer from the other replica", WAIT, |t| shown(t, 1, "echo: still there?") == 1).await;
    assert_eq!(shown(&telegram, 1, "echo: hello"), 1);
    assert_eq!(telegram.concurrent_polls(), 0, "two replicas polled at once");
    assert_eq!(standby.stop().await, 0);
}

/// The database URL the harness's daemons use.
fn database_of(h: &Harness) -> String {
    h.env_value("SWITCHBOARD_STORE__POSTGRES__URL").expect("set by setup")
}

/// Slack's Socket Mode receives on every replica, and Slack spreads the events
/// over their connections: a chat's events arrive at both, yet each is judged
/// and answered by the replica holding the chat, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_chat_arriving_at_both_replicas_are_answered_once_in_order() {
    let mut h = Harness::new().await;
    let slack = FakeSlack::start().await;
    h.with_slack(&slack);
    h.set("SWITCHBOARD_SLACK__DM_POLICY", "open");
    as_replicas(&mut h, TTL_MS);
    slack.spread_over_connections(true);
    let a = h.serve_slack(&slack).await;
    let b = h.spawn_serve(Some(&second_dir(&h)));
    slack.wait_until("both replicas connected", WAIT, |s| s.connections() >= 2).await;

    const USERS: [&str; 2] = ["U0000USER1", "U0000USER2"];
    const PER_USER: usize = 6;
    let slack = Arc::new(slack);
    let mut talkers = Vec::new();
    for user in USERS {
        let slack = slack.clone();
        talkers.push(tokio::spawn(async move {
            let channel = slack.dm_channel(user);
            for n in 0..PER_USER {
                let text = format!("msg-{user}-n{n}-end");
                slack.dm(user, None, &text);
                let (echo, channel) = (format!("echo: {text}"), channel.clone());
                slack
                    .wait_until(&format!("an answer to {text}"), WAIT, move |s| {
                        s.bot_messages(&channel).iter().any(|m| m.text.contains(&echo))
                    })
                    .await;
            }
        }));
    }
    for talker in talkers {
        talker.await.expect("every message answered");
    }
    let spread = slack.envelopes_by_connection();
    println!("replicas: envelopes per connection {spread:?}");
    assert!(spread.len() >= 2 && spread.values().all(|&n| n > 0), "both replicas received events: {spread:?}");
    // Late echoes of the bot's own messages are not replies: let them settle.
    tokio::time::sleep(Duration::from_millis(3 * POLL_MS)).await;
    for user in USERS {
        let texts: Vec<String> = slack.bot_messages(&slack.dm_channel(user)).into_iter().map(|m| m.text).collect();
        let mut last = None;
        for n in 0..PER_USER {
            let echo = format!("echo: msg-{user}-n{n}-end");
            let at: Vec<usize> = texts.iter().enumerate().filter(|(_, t)| t.contains(&echo)).map(|(i, _)| i).collect();
            assert_eq!(at.len(), 1, "{echo} shown once: {texts:?}");
            assert!(last < Some(at[0]), "answers out of order: {texts:?}");
            last = Some(at[0]);
        }
    }

    // A burst into one chat, spread over both replicas: still one turn at a time
    // (each model call sees the answer of the one before), nothing lost or twice.
    h.llm.set_chunk_delay(Duration::from_millis(30));
    let user = "U0000USER3";
    let channel = slack.dm_channel(user);
    for n in 0..4 {
        slack.dm(user, None, &format!("burst-n{n}-end"));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Messages that arrive while a turn runs are answered together by the next
    // turn (quoted with their sender): the last one is in the last answer.
    let last = "burst-n3-end".to_string();
    let (c, l) = (channel.clone(), last.clone());
    let answered = tokio::time::timeout(WAIT, async {
        while !slack.bot_messages(&c).iter().any(|m| m.text.contains(&l)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    if answered.await.is_err() {
        let shown: Vec<String> = slack.bot_messages(&channel).into_iter().map(|m| m.text).collect();
        panic!("the burst was not answered: {shown:?}\nA:\n{}\nB:\n{}", a.log(), b.log());
    }
    let mut calls: Vec<_> = h.llm.requests().into_iter().filter(|r| r.all_text().contains("burst-n")).collect();
    calls.sort_by_key(|r| r.received_at);
    for pair in calls.windows(2) {
        let before = format!("echo: {}", pair[0].last_user_text());
        assert!(pair[1].all_text().contains(&before), "a turn began before the one before it answered ({before:?})");
    }
    for n in 0..4 {
        let text = format!("burst-n{n}-end");
        assert!(calls.iter().any(|r| r.all_text().contains(&text)), "{text} reached the model");
        let shown = slack.bot_messages(&channel).iter().filter(|m| m.text.contains(&text)).count();
        assert!(shown <= 1, "{text} answered {shown} times");
    }

    let handed = a.log().contains("took over") || b.log().contains("took over");
    println!("replicas: a chat passed between the replicas: {handed}");
    assert_eq!(a.stop().await, 0);
    assert_eq!(b.stop().await, 0);
}

/// A Discord connection is an exclusive ingress too: the standby never connects
/// while the other replica's does, and connects once that one is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_discord_connection_across_replicas_and_a_takeover_after_a_kill() {
    const USER: &str = "100000000000000042";
    let mut h = Harness::new().await;
    let discord = FakeDiscord::start().await;
    h.with_discord(&discord);
    h.set("SWITCHBOARD_DISCORD__DM_POLICY", "open");
    as_replicas(&mut h, TTL_MS);
    let a = h.serve_discord(&discord).await;
    let b = h.spawn_serve(Some(&second_dir(&h)));
    b.wait_log("standing by", WAIT).await;
    discord.dm(USER, "before");
    let dm = discord.dm_channel(USER);
    let d = dm.clone();
    discord
        .wait_until("an answer", WAIT, move |f| f.bot_messages(&d).iter().any(|m| m.content() == "echo: before"))
        .await;
    let (connections, identifies, _) = discord.sessions();
    assert_eq!((connections, identifies), (1, 1), "the standby never connected");

    let killed_at = tokio::time::Instant::now();
    a.kill9().await;
    discord.wait_until("the standby to connect", WAIT, |f| f.sessions().1 == 2).await;
    let takeover = killed_at.elapsed();
    println!("replicas: the standby identified on Discord {takeover:?} after the kill");
    assert!(takeover <= Duration::from_millis(TTL_MS + 2 * POLL_MS) + Duration::from_millis(500), "{takeover:?}");
    discord.dm(USER, "after");
    let d = dm.clone();
    discord
        .wait_until("an answer", WAIT, move |f| f.bot_messages(&d).iter().any(|m| m.content() == "echo: after"))
        .await;
    let answers: Vec<String> = discord.bot_messages(&dm).iter().map(|m| m.content().to_string()).collect();
    assert_eq!(answers, ["echo: before", "echo: after"]);
    assert_eq!(b.stop().await, 0);
}

/// An approval asked on one replica is decided by a button press that Slack
/// hands to the other: the press reaches the replica holding the chat, whose
/// waiting turn runs the tool once and answers once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_pressed_on_the_other_replica_decides_the_waiting_turn() {
    const ADMIN: &str = "U0000ADMIN";
    let mut h = Harness::new().await;
    let slack = FakeSlack::start().await;
    h.with_slack(&slack);
    h.set("SWITCHBOARD_SLACK__DM_POLICY", "open");
    h.set("SWITCHBOARD_SLACK__ADMINS", ADMIN);
    as_replicas(&mut h, TTL_MS);
    slack.spread_over_connections(true);
    let a = h.serve_slack(&slack).await;
    let b = h.spawn_serve(Some(&second_dir(&h)));
    slack.wait_until("both replicas connected", WAIT, |s| s.connections() >= 2).await;

    // Asked on the first replica...
    slack.pin_to_connection(Some(1));
    h.llm.push(Reply::tool_call("Write", serde_json::json!({"path": "note.txt", "content": "from a replica"})));
    h.llm.push(Reply::text("Written."));
    let dm = slack.dm_channel(ADMIN);
    slack.dm(ADMIN, None, "write a note");
    let is_prompt = |m: &SlackMessage| m.blocks.as_array().is_some_and(|b| b.len() == 2);
    slack.wait_until("a prompt", WAIT, |s| s.bot_messages(&dm).iter().any(is_prompt)).await;
    let prompt = slack.bot_messages(&dm).into_iter().find(is_prompt).unwrap();
    let allow =
        prompt.blocks[1]["elements"].as_array().unwrap().iter().find(|b| b["text"]["text"] == "Allow once").unwrap()
            ["value"]
            .as_str()
            .unwrap()
            .to_string();

    // ...pressed on the second.
    slack.pin_to_connection(Some(2));
    let pressed = slack.click(&dm, ADMIN, &prompt.ts, &allow);
    let d = dm.clone();
    slack.wait_until("the answer", WAIT, move |s| s.bot_messages(&d).iter().any(|m| m.text.contains("Written."))).await;
    let on = slack.envelopes().into_iter().find(|e| e.id == pressed).and_then(|e| e.connection);
    assert_eq!(on, Some(2), "the press reached the other replica");
    assert_eq!(std::fs::read_to_string(h.workdir().join("note.txt")).unwrap(), "from a replica");
    tokio::time::sleep(Duration::from_millis(3 * POLL_MS)).await;
    let shown: Vec<String> = slack.bot_messages(&dm).into_iter().map(|m| m.text).collect();
    assert_eq!(shown.len(), 2, "the prompt and one answer, nothing more: {shown:?}");
    assert_eq!(h.llm.requests().len(), 2, "one turn: the call, then its result");
    let resolved = slack.message(&prompt.ts).unwrap();
    assert!(resolved.text.starts_with("Allowed once by"), "{}", resolved.text);
    assert_eq!(a.stop().await, 0);
    assert_eq!(b.stop().await, 0);
}

/// With one conversation shared by every chat (`routing = "shared"`), chats held
/// by different replicas still take turns in it one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_shared_by_chats_on_both_replicas_runs_one_turn_at_a_time() {
    let mut h = Harness::new().await;
    let slack = FakeSlack::start().await;
    h.with_slack(&slack);
    h.set("SWITCHBOARD_SLACK__DM_POLICY", "open");
    h.set("SWITCHBOARD_GATEWAY__ROUTING", "shared");
    as_replicas(&mut h, TTL_MS);
    slack.spread_over_connections(true);
    let a = h.serve_slack(&slack).await;
    let b = h.spawn_serve(Some(&second_dir(&h)));
    slack.wait_until("both replicas connected", WAIT, |s| s.connections() >= 2).await;
    h.llm.set_chunk_delay(Duration::from_millis(40));

    const USERS: [&str; 2] = ["U0000USER1", "U0000USER2"];
    for round in 0..3 {
        // Each user's message to a different replica, at the same moment.
        for (i, user) in USERS.iter().enumerate() {
            slack.pin_to_connection(Some(i as u64 + 1));
            slack.dm(user, None, &format!("shared-{user}-r{round}-end"));
        }
        for user in USERS {
            let (channel, text) = (slack.dm_channel(user), format!("shared-{user}-r{round}-end"));
            slack
                .wait_until(&format!("an answer to {text}"), WAIT, move |s| {
                    s.bot_messages(&channel).iter().any(|m| m.text.contains(&text))
                })
                .await;
        }
    }
    let mut calls: Vec<_> = h.llm.requests().into_iter().filter(|r| r.all_text().contains("shared-")).collect();
    calls.sort_by_key(|r| r.received_at);
    for pair in calls.windows(2) {
        let before = format!("echo: {}", pair[0].last_user_text());
        assert!(pair[1].all_text().contains(&before), "a turn began before the one before it answered ({before:?})");
    }
    assert_eq!(a.stop().await, 0);
    assert_eq!(b.stop().await, 0);
}
