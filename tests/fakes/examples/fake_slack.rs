//! Runs the fake Slack on its own, for checking it against a real client
//! library (slack_sdk, slack_bolt). Prints one JSON line with the Web API base,
//! the tokens and a channel, then reads commands from stdin, one per line:
//!
//! `dm USER text…`, `mention CHANNEL USER text…`, `say CHANNEL USER text…`,
//! `reply CHANNEL THREAD_TS USER text…`, `assistant USER`,
//! `slash CHANNEL USER text…`, `click CHANNEL USER MESSAGE_TS VALUE`,
//! `reconnect`, `drop`, `dump` (the bot's messages, envelopes and calls as one
//! JSON line), `quit`.

use std::io::BufRead;

use serde_json::json;
use switchboard_fakes::slack::{APP_TOKEN, BOT_TOKEN, BOT_USER};
use switchboard_fakes::FakeSlack;

#[tokio::main]
async fn main() {
    let slack = FakeSlack::start().await;
    slack.add_channel("C0000GENERAL");
    println!(
        "{}",
        json!({"api_url": slack.api_url(), "bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "bot_user": BOT_USER, "channel": "C0000GENERAL"})
    );
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let rest = |n: usize| words.get(n..).map(|w| w.join(" ")).unwrap_or_default();
        let out = match words.as_slice() {
            ["dm", user, ..] => json!({"ts": slack.dm(user, None, &rest(2))}),
            ["mention", channel, user, ..] => json!({"ts": slack.mention(channel, user, &rest(3))}),
            ["say", channel, user, ..] => json!({"ts": slack.say(channel, user, None, &rest(3))}),
            ["reply", channel, thread, user, ..] => json!({"ts": slack.say(channel, user, Some(thread), &rest(4))}),
            ["assistant", user] => json!({"thread_ts": slack.open_assistant(user)}),
            ["slash", channel, user, ..] => json!({"envelope": slack.slash(channel, user, "/switchboard", &rest(3))}),
            ["click", channel, user, ts, value] => json!({"envelope": slack.click(channel, user, ts, value)}),
            ["reconnect"] => {
                slack.request_reconnect("refresh_requested");
                json!({"ok": true})
            }
            ["drop"] => {
                slack.drop_connection();
                json!({"ok": true})
            }
            ["dump"] => {
                let envelopes: Vec<_> = slack
                    .envelopes()
                    .iter()
                    .map(|e| json!({"id": e.id, "type": e.kind, "attempts": e.attempts, "acked_ms": e.acked_after.map(|d| d.as_millis() as u64)}))
                    .collect();
                let calls: Vec<_> = ["chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"]
                    .iter()
                    .flat_map(|m| slack.calls_of(m))
                    .map(|c| json!({"method": c.method, "body": c.body}))
                    .collect();
                json!({"envelopes": envelopes, "calls": calls, "connections": slack.connections()})
            }
            ["quit"] => break,
            _ => json!({"error": format!("unknown command: {line}")}),
        };
        println!("{out}");
    }
}
