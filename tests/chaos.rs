//! Chaos: the real `switchboard serve` is killed with SIGKILL at random moments
//! while several chats talk to it (short replies, streamed replies, replies long
//! enough to be sent in two parts, and tool calls that wait for an approver's
//! button), and restarted each time. At the end every message's answers are
//! counted: none would be a lost message, two a duplicate. A duplicate whose first
//! copy was sent within moments of a kill falls in the window Telegram leaves
//! open (sent, then killed before the outbox could record it) and is reported
//! apart; any other duplicate, and any lost message, fails the test.
//!
//! Bounded: `SWITCHBOARD_CHAOS_ROUNDS` rounds (8 by default, at most 200), each at
//! most a few seconds, then at most a minute for the last answers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::Harness;
use switchboard_fakes::{FakeTelegram, Fallback};

/// Users who talk: two with short replies, one with streamed ones, one with long ones.
const SHORT: [i64; 2] = [101, 102];
const STREAMED: i64 = 103;
const LONG: i64 = 104;
/// Each approval round is asked by a fresh admin in their own DM.
const FIRST_ADMIN: i64 = 201;
/// A duplicate whose first copy went out this soon before a kill is the platform's window.
const WINDOW: Duration = Duration::from_millis(300);

/// What one message should get, and how to find it among the bot's messages.
struct Expected {
    chat: i64,
    kind: &'static str,
    /// Text that only an answer to this message holds (the fake model echoes it).
    needle: String,
    /// How often one answer holds it: twice for a long reply (at its start and
    /// its end, so a lost last part shows), once otherwise. Collected messages
    /// are answered together, so answers are counted by what they hold, not by
    /// how many messages were sent.
    per_answer: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_nothing_is_lost_and_nothing_answered_twice() {
    let rounds: usize =
        std::env::var("SWITCHBOARD_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(8).clamp(1, 200);
    let seed = common::chaos_seed();
    println!("chaos: {rounds} rounds, seed {seed} (SWITCHBOARD_CHAOS_SEED={seed} repeats the kill times)");
    let mut random = common::Lcg(seed);

    let mut h = Harness::new().await;
    let tg = FakeTelegram::start().await;
    h.with_telegram(&tg);
    h.llm.set_fallback(Fallback::Agent);
    h.llm.set_chunk_delay(Duration::from_millis(150));
    let admins: Vec<String> = (0..rounds as i64).map(|i| (FIRST_ADMIN + i).to_string()).collect();
    let users: Vec<String> = SHORT.iter().chain([STREAMED, LONG].iter()).map(i64::to_string).collect();
    h.set("SWITCHBOARD_TELEGRAM__ADMINS", &admins.join(","));
    h.set("SWITCHBOARD_TELEGRAM__ALLOWED_USERS", &users.join(","));
    h.set("SWITCHBOARD_TELEGRAM__DM_POLICY", "allowlist");
    h.set("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", "1");
    h.set("SWITCHBOARD_AGENT__PERMISSION_MODE", "standard");
    // The streamed chat's turn (about 2 s) seldom outlives a round, so its messages
    // wait one more a round; past the per-chat bound (20 by default) they would be
    // turned away with a notice, by design. Raised above the most rounds, so that a
    // long run counts losses, not the bound.
    h.set("SWITCHBOARD_TELEGRAM__MAX_WAITING", "1000");

    let started = Instant::now();
    let mut expected = Vec::new();
    let mut kills: Vec<Instant> = Vec::new();
    let mut logs = Vec::new();
    let mut clicked = HashSet::new();
    for round in 0..rounds {
        let d = h.serve(&tg).await;
        for (i, user) in SHORT.iter().enumerate() {
            let text = format!("short{i}-r{round}.");
            tg.send_dm(*user, &text);
            expected.push(Expected { chat: *user, kind: "short", needle: text, per_answer: 1 });
        }
        let text = format!("slow-r{round}.");
        tg.send_dm(STREAMED, &text);
        expected.push(Expected { chat: STREAMED, kind: "streamed", needle: text, per_answer: 1 });
        let text = format!("long-r{round}.");
        tg.send_dm(LONG, &text);
        expected.push(Expected { chat: LONG, kind: "long", needle: text, per_answer: 2 });
        if round % 2 == 0 {
            let admin = FIRST_ADMIN + round as i64;
            let command = format!("echo approved-r{round} >> approvals.log");
            tg.send_dm(admin, &format!("RUN {command}"));
            expected.push(Expected { chat: admin, kind: "approval", needle: format!("ran: {command}"), per_answer: 1 });
        }
        // Live for a random moment, pressing "Allow once" on prompts as they come.
        let live = Duration::from_millis(100 + random.below(1900));
        let until = Instant::now() + live;
        while Instant::now() < until {
            click_prompts(&tg, &mut clicked);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        logs.push(d.log());
        d.kill9().await;
        kills.push(Instant::now());
    }

    // The last run answers whatever is left.
    let d = h.serve(&tg).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && expected.iter().any(|e| holding(&tg, e) < e.per_answer) {
        click_prompts(&tg, &mut clicked);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a duplicate to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = d.log();
    d.kill9().await;

    let mut report = Report::default();
    for e in &expected {
        let held = holding(&tg, e);
        let shown = || format!("{} in chat {} ({:?}): {}", e.kind, e.chat, e.needle, timeline(&tg, e, &kills, started));
        match held {
            0 => {
                let requests = h.llm.requests();
                let seen = requests.iter().filter(|r| r.all_text().contains(&e.needle)).count();
                let asked = requests.iter().filter(|r| r.unanswered_user_text().contains(&e.needle)).count();
                report.lost.push(format!("{} (seen in {seen} model requests, to be answered in {asked})", shown()))
            }
            n if n == e.per_answer => report.once += 1,
            n if n < e.per_answer => report.lost.push(format!("partly: {}", shown())),
            // More than one answer, or a streamed start shown again: the first
            // copy went out moments before a kill, before it could be recorded.
            _ if sent_just_before_a_kill(&tg, e, &kills) => report.window.push(e.kind),
            _ => report.twice.push(format!("more than once: {}", shown())),
        }
    }
    let ran = std::fs::read_to_string(h.path("work/approvals.log")).unwrap_or_default();
    for round in (0..rounds).step_by(2) {
        match ran.lines().filter(|l| *l == format!("approved-r{round}")).count() {
            1 => {}
            0 => report.lost.push(format!("the approved command of round {round} never ran")),
            times => report.twice.push(format!("the approved command of round {round} ran {times} times")),
        }
    }
    let unchanged = unchanged_edits(&tg);
    println!(
        "chaos: {} kills, {} answers expected: {} once, {} lost, {} twice, {} twice in Telegram's send-to-record window; {} edits that changed nothing",
        kills.len(),
        expected.len(),
        report.once,
        report.lost.len(),
        report.twice.len(),
        report.window.len(),
        unchanged
    );
    assert!(
        report.lost.is_empty() && report.twice.is_empty(),
        "lost: {:#?}\nanswered twice: {:#?}\nthe runs' logs:\n{}\n{log}",
        report.lost,
        report.twice,
        logs.join("\n--- killed; restarted ---\n")
    );
}

#[derive(Default)]
struct Report {
    once: usize,
    lost: Vec<String>,
    twice: Vec<String>,
    window: Vec<&'static str>,
}

/// How often the bot's messages in `e`'s chat, as they read now, hold its needle.
fn holding(tg: &FakeTelegram, e: &Expected) -> usize {
    tg.messages_in(e.chat).iter().map(|m| m.plain_text.matches(e.needle.as_str()).count()).sum()
}

/// Whether the first copy of `e`'s answer went out just before a kill.
fn sent_just_before_a_kill(tg: &FakeTelegram, e: &Expected, kills: &[Instant]) -> bool {
    common::first_sent_just_before(tg, e.chat, &e.needle, kills, WINDOW)
}

/// When each copy of `e`'s answer was sent or edited in, and when the kills were,
/// in ms since `started`: what a failure report needs.
fn timeline(tg: &FakeTelegram, e: &Expected, kills: &[Instant], started: Instant) -> String {
    let ms = |at: Instant| at.saturating_duration_since(started).as_millis();
    let copies: Vec<String> = ["sendmessage", "editmessagetext"]
        .iter()
        .flat_map(|method| tg.calls_of(method).into_iter().map(move |c| (*method, c)))
        .filter(|(_, c)| c.params.get("chat_id").and_then(|v| v.as_i64()) == Some(e.chat))
        .filter(|(_, c)| common::sent_text(c).contains(&e.needle))
        .map(|(method, c)| {
            // The filler words of long replies left out.
            let text = common::sent_text(&c);
            let words: Vec<&str> =
                text.split(' ').filter(|w| !(w.starts_with('w') && w[1..].parse::<u32>().is_ok())).collect();
            format!("{method} at {} ms (message {:?}): {}", ms(c.at), c.params.get("message_id"), words.join(" "))
        })
        .collect();
    let kills: Vec<u128> = kills.iter().map(|k| ms(*k)).collect();
    format!("copies: {copies:?}; kills at {kills:?} ms")
}

/// Presses "Allow once" on every prompt not pressed yet, as its admin.
fn click_prompts(tg: &FakeTelegram, clicked: &mut HashSet<(i64, i64)>) {
    for m in tg.sent() {
        let Some(markup) = &m.reply_markup else { continue };
        if !clicked.insert((m.chat_id, m.message_id)) {
            continue;
        }
        let data = markup["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .find(|b| b["text"] == "Allow once")
            .and_then(|b| b["callback_data"].as_str().map(str::to_string));
        if let Some(data) = data {
            tg.click(m.chat_id, m.chat_id, m.message_id, &data);
        }
    }
}

/// Edits whose text was the message's text already (Telegram refuses them).
fn unchanged_edits(tg: &FakeTelegram) -> usize {
    tg.calls_of("editmessagetext").len()
        - tg.sent().iter().map(|m| m.edits.len()).sum::<usize>().min(tg.calls_of("editmessagetext").len())
}
