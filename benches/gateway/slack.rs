//! The Slack run of the gateway benchmark: the real `switchboard serve` in
//! Socket Mode against the fake Slack, in the shape of [`dm_run`](super::dm_run).

use std::time::Instant;

use switchboard_fakes::slack::{APP_TOKEN, BOT_TOKEN};
use switchboard_fakes::{FakeLlm, FakeSlack};

use super::dm_run::{measure, spawn_serve, DmChannel, Figures};

/// The heading of this run's figures.
pub const TITLE: &str = "Slack run (fake Slack Web API and Socket Mode";

/// The Slack user of chat `n`.
fn user(n: i64) -> String {
    format!("U{n:08}")
}

impl DmChannel for FakeSlack {
    fn chat(&self, n: i64) -> String {
        self.dm_channel(&user(n))
    }

    fn write(&self, n: i64, text: &str) {
        self.dm(&user(n), None, text);
    }

    fn replied_since(&self, after: Instant) -> Vec<(String, Instant)> {
        self.with_calls(|calls| {
            let posts = calls.iter().filter(|c| c.method == "chat.postMessage" && c.at >= after);
            posts.filter_map(|c| Some((c.body["channel"].as_str()?.to_string(), c.at))).collect()
        })
    }
}

pub async fn run(llm: &FakeLlm) -> Figures {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("SWITCHBOARD_SLACK__BOT_TOKEN", BOT_TOKEN.to_string()),
        ("SWITCHBOARD_SLACK__APP_TOKEN", APP_TOKEN.to_string()),
        ("SWITCHBOARD_SLACK__API_URL", slack.api_url()),
        ("SWITCHBOARD_SLACK__DM_POLICY", "open".to_string()),
    ];
    let daemon = spawn_serve(llm, dir.path(), &settings, || slack.connections() > 0).await;
    measure(&slack, daemon).await
}
