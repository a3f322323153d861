//! Killing the real `serve` with SIGKILL at random moments while people write to
//! it on Discord, in a bounded loop, then counting the answers to every message:
//! none may be lost (the journal, and catching up on what was sent while it was
//! down) and none may arrive twice (the outbox's nonces with `enforce_nonce`).
//! Rounds: SWITCHBOARD_CHAOS_ROUNDS (default 6); SWITCHBOARD_CHAOS_SEED repeats
//! a run's kill times.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use switchboard_fakes::{FakeDiscord, Fallback};

const USERS: [&str; 3] = ["100000000000000051", "100000000000000052", "100000000000000053"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_no_discord_message_is_lost_or_answered_twice() {
    let rounds: usize =
        std::env::var("SWITCHBOARD_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6).clamp(1, 200);
    let seed = std::env::var("SWITCHBOARD_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("discord chaos: {rounds} rounds, seed {seed} (SWITCHBOARD_CHAOS_SEED={seed} repeats the kill times)");
    let mut random = seed;
    let mut below = |n: u64| {
        random = random.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (random >> 33) % n
    };

    let mut h = Harness::new().await;
    let discord = FakeDiscord::start().await;
    h.with_discord(&discord);
    h.set("SWITCHBOARD_DISCORD__DM_POLICY", "allowlist");
    h.set("SWITCHBOARD_DISCORD__ALLOWED_USERS", &USERS.join(","));
    h.llm.set_fallback(Fallback::Agent);
    h.llm.set_chunk_delay(Duration::from_millis(100));

    // Every chat says something once before the kills begin: catching up after a
    // restart covers the chats the bot has seen.
    let first = h.serve_discord(&discord).await;
    let mut needles = Vec::new();
    for (i, user) in USERS.iter().enumerate() {
        let text = format!("hello{i}.");
        discord.dm(user, &text);
        needles.push((discord.dm_channel(user), text));
    }
    let all_answered = |d: &FakeDiscord, needles: &[(String, String)]| {
        needles.iter().all(|(channel, needle)| count(d, channel, needle) >= 1)
    };
    let hellos = needles.clone();
    discord.wait_until("the first answers", Duration::from_secs(20), move |d| all_answered(d, &hellos)).await;
    first.kill9().await;

    for round in 0..rounds {
        let d = h.serve_discord(&discord).await;
        // Some messages while it runs, some a moment later, at random.
        for (i, user) in USERS.iter().enumerate() {
            let text = format!("m{i}-r{round}.");
            discord.dm(user, &text);
            needles.push((discord.dm_channel(user), text));
            tokio::time::sleep(Duration::from_millis(below(300))).await;
        }
        tokio::time::sleep(Duration::from_millis(50 + below(1200))).await;
        d.kill9().await;
        // And one while it is down.
        let user = USERS[round % USERS.len()];
        let text = format!("down-r{round}.");
        discord.dm(user, &text);
        needles.push((discord.dm_channel(user), text));
    }

    let last = h.serve_discord(&discord).await;
    let pending = needles.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !all_answered(&discord, &pending) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a duplicate to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts: Vec<(String, usize)> = needles.iter().map(|(c, n)| (n.clone(), count(&discord, c, n))).collect();
    let lost: Vec<&String> = counts.iter().filter(|(_, n)| *n == 0).map(|(t, _)| t).collect();
    let twice: Vec<&(String, usize)> = counts.iter().filter(|(_, n)| *n > 1).collect();
    println!("discord chaos: {} messages, {} lost, {} answered twice", counts.len(), lost.len(), twice.len());
    assert!(lost.is_empty() && twice.is_empty(), "lost: {lost:?}; twice: {twice:?}; last log:\n{}", last.log());
}

/// How many times the bot's messages in `channel` hold `needle`.
fn count(discord: &FakeDiscord, channel: &str, needle: &str) -> usize {
    discord.bot_messages(channel).iter().map(|m| m.content().matches(needle).count()).sum()
}
