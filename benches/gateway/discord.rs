//! The Discord run of the gateway benchmark: the real `switchboard serve`
//! against the fake Discord (HTTP API and Gateway), in the shape of
//! [`dm_run`](super::dm_run).

use std::time::Instant;

use switchboard_fakes::{FakeDiscord, FakeLlm};

use super::dm_run::{measure, spawn_serve, DmChannel, Figures};

/// The heading of this run's figures.
pub const TITLE: &str = "Discord run (fake Discord API and Gateway";

/// Discord user id of chat `n`.
fn user(n: i64) -> String {
    format!("{}", 100_000_000_000_000_000 + n)
}

impl DmChannel for FakeDiscord {
    fn chat(&self, n: i64) -> String {
        self.dm_channel(&user(n))
    }

    fn write(&self, n: i64, text: &str) {
        self.dm(&user(n), text);
    }

    fn replied_since(&self, after: Instant) -> Vec<(String, Instant)> {
        self.with_calls(|calls| {
            let sends = calls.iter().filter(|c| c.at >= after && c.method == "POST");
            sends
                .filter_map(|c| {
                    let channel = c.path.strip_prefix("/api/v10/channels/")?.strip_suffix("/messages")?;
                    Some((channel.to_string(), c.at))
                })
                .collect()
        })
    }
}

pub async fn run(llm: &FakeLlm) -> Figures {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("SWITCHBOARD_DISCORD__TOKEN", discord.token()),
        ("SWITCHBOARD_DISCORD__API_URL", discord.api_url()),
        ("SWITCHBOARD_DISCORD__DM_POLICY", "open".to_string()),
    ];
    let daemon = spawn_serve(llm, dir.path(), &settings, || discord.sessions().1 > 0).await;
    measure(&discord, daemon).await
}
