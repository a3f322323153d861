//! Runs the fake Discord on its own, for checking it against a real client
//! library (discord.py). Prints one JSON line with the addresses and token, then
//! reads commands from stdin, one per line:
//!
//! `dm USER text…`, `say CHANNEL USER text…`, `mention CHANNEL USER text…`,
//! `slash CHANNEL USER NAME [key=value…]`, `click CHANNEL USER MESSAGE CUSTOM_ID`,
//! `disconnect CODE`, `silent`, `dump` (prints the bot's messages, the
//! interactions and every call as one JSON line), `quit`.

use std::io::BufRead;

use serde_json::json;
use switchboard_fakes::FakeDiscord;

const GUILD: &str = "200000000000000001";
const CHANNELS: [&str; 2] = ["300000000000000001", "300000000000000002"];

#[tokio::main]
async fn main() {
    let discord = FakeDiscord::start().await;
    discord.add_guild(GUILD, &CHANNELS);
    println!(
        "{}",
        json!({"api_url": discord.api_url(), "token": discord.token(), "guild": GUILD, "channels": CHANNELS})
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
            ["dm", user, ..] => json!({"id": discord.dm(user, &rest(2))}),
            ["say", channel, user, ..] => json!({"id": discord.say(channel, user, &rest(3), false)}),
            ["mention", channel, user, ..] => json!({"id": discord.say(channel, user, &rest(3), true)}),
            ["slash", channel, user, name, options @ ..] => {
                let pairs: Vec<(&str, &str)> = options.iter().filter_map(|o| o.split_once('=')).collect();
                json!({"id": discord.slash(channel, user, name, &pairs)})
            }
            ["click", channel, user, message, custom_id] => {
                json!({"id": discord.click(channel, user, message, custom_id)})
            }
            ["disconnect", code] => {
                discord.disconnect(code.parse().unwrap_or(4000));
                json!({"ok": true})
            }
            ["silent"] => {
                discord.go_silent();
                json!({"ok": true})
            }
            ["dump"] => {
                let messages: Vec<_> = discord.all_bot_messages().iter().map(|m| m.json.clone()).collect();
                let calls: Vec<_> = discord
                    .calls()
                    .iter()
                    .map(|c| json!({"method": c.method, "path": c.path, "body": c.body}))
                    .collect();
                json!({"bot_messages": messages, "calls": calls, "sessions": discord.sessions(), "commands": discord.commands("global")})
            }
            ["quit"] => break,
            _ => json!({"error": format!("unknown command: {line}")}),
        };
        println!("{out}");
    }
}
