//! Killing the real `serve` with SIGKILL at random moments while people write to
//! it on Slack (Socket Mode), in a bounded loop, then counting the answers to
//! every message. None may be lost: an envelope is acknowledged only once it is
//! journaled, so Slack delivers again what a killed process never took. Slack
//! has no idempotent send, so an answer sent in the moment before a kill, before
//! it was recorded, can arrive twice: those are counted and printed, not failed.
//! Rounds: SWITCHBOARD_CHAOS_ROUNDS (default 6); SWITCHBOARD_CHAOS_SEED repeats
//! a run's kill times.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use switchboard_fakes::{FakeSlack, Fallback};

const USERS: [&str; 3] = ["U0000CHAOS1", "U0000CHAOS2", "U0000CHAOS3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_no_slack_message_is_lost() {
    let rounds: usize =
        std::env::var("SWITCHBOARD_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6).clamp(1, 200);
    let seed = std::env::var("SWITCHBOARD_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("slack chaos: {rounds} rounds, seed {seed} (SWITCHBOARD_CHAOS_SEED={seed} repeats the kill times)");
    let mut random = seed;
    let mut below = |n: u64| {
        random = random.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (random >> 33) % n
    };

    let mut h = Harness::new().await;
    let slack = FakeSlack::start().await;
    h.with_slack(&slack);
    h.set("SWITCHBOARD_SLACK__DM_POLICY", "allowlist");
    h.set("SWITCHBOARD_SLACK__ALLOWED_USERS", &USERS.join(","));
    h.llm.set_fallback(Fallback::Agent);
    h.llm.set_chunk_delay(Duration::from_millis(100));

    let mut needles = Vec::new();
    for round in 0..rounds {
        let d = h.serve_slack(&slack).await;
        for (i, user) in USERS.iter().enumerate() {
            let text = format!("m{i}-r{round}.");
            slack.dm(user, None, &text);
            needles.push((slack.dm_channel(user), text));
            tokio::time::sleep(Duration::from_millis(below(300))).await;
        }
        tokio::time::sleep(Duration::from_millis(50 + below(1200))).await;
        d.kill9().await;
        // And one while it is down: Slack keeps it for the next connection.
        let user = USERS[round % USERS.len()];
        let text = format!("down-r{round}.");
        slack.dm(user, None, &text);
        needles.push((slack.dm_channel(user), text));
    }

    let last = h.serve_slack(&slack).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && needles.iter().any(|(c, n)| count(&slack, c, n) == 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts: Vec<(String, usize)> = needles.iter().map(|(c, n)| (n.clone(), count(&slack, c, n))).collect();
    let lost: Vec<&String> = counts.iter().filter(|(_, n)| *n == 0).map(|(t, _)| t).collect();
    let twice = counts.iter().filter(|(_, n)| *n > 1).count();
    println!(
        "slack chaos: {} messages, {} lost, {twice} answered twice (Slack's send-to-record window)",
        counts.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}; last log:\n{}", last.log());
}

/// How many times the bot's messages in `channel` hold `needle`.
fn count(slack: &FakeSlack, channel: &str, needle: &str) -> usize {
    slack.bot_messages(channel).iter().map(|m| m.text.matches(needle).count()).sum()
}
