//! Adapter configuration ([`DiscordConfig`]) and its validation.

use std::fmt;
use std::time::Duration;

use switchboard_channel_core::settings::is_loopback_http;
use switchboard_channel_core::{ChannelError, CommandSpec};

/// The public API's base address.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// How far back messages missed while the daemon was down are fetched, by default.
pub const DEFAULT_CATCH_UP_HOURS: u64 = 12;
/// The most hours catching up may reach back: less than the day for which the
/// gateway's journal remembers answered events, which is what keeps a message
/// fetched again from being answered again.
pub const MAX_CATCH_UP_HOURS: u64 = 20;
/// The most missed messages fetched per channel, by default.
pub const DEFAULT_CATCH_UP_MESSAGES: u64 = 50;

/// Messages sent while the daemon was not connected, fetched when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Messages older than this are left alone (0: no catching up).
    pub max_age: Duration,
    /// At most this many per channel, the newest ones.
    pub max_messages: usize,
}

/// Everything the adapter needs to run one bot.
#[derive(Clone)]
pub struct DiscordConfig {
    /// The bot token from the Developer Portal.
    pub token: String,
    /// `https://discord.com`, or a fake's address in tests.
    pub api_url: String,
    /// Guilds where slash commands are registered (instantly); empty: globally.
    pub command_guilds: Vec<String>,
    /// Fetching what was missed.
    pub catch_up: CatchUp,
    /// Registered as slash commands (with `/ask`).
    pub commands: &'static [CommandSpec],
}

impl DiscordConfig {
    /// The public API, global commands, default catch-up, no commands.
    pub fn new(token: impl Into<String>) -> DiscordConfig {
        DiscordConfig {
            token: token.into(),
            api_url: DEFAULT_API_URL.into(),
            command_guilds: Vec::new(),
            catch_up: CatchUp {
                max_age: Duration::from_secs(DEFAULT_CATCH_UP_HOURS * 3600),
                max_messages: DEFAULT_CATCH_UP_MESSAGES as usize,
            },
            commands: &[],
        }
    }
}

/// The token never appears in debug output.
impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("command_guilds", &self.command_guilds)
            .field("catch_up", &self.catch_up)
            .field("commands", &self.commands.len())
            .finish()
    }
}

/// One problem with the configuration, by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key (`token`, `api_url`).
    pub field: &'static str,
    /// What is wrong, without the value of a secret.
    pub message: String,
}

/// Every problem with `config`; none for a usable one. Makes no request.
pub fn validate(config: &DiscordConfig) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    if let Err(why) = check_token(&config.token) {
        problems.push(Problem { field: "token", message: why });
    }
    let url = config.api_url.trim();
    if !(url.starts_with("https://") && url.len() > "https://".len() || is_loopback_http(url)) {
        problems.push(Problem {
            field: "api_url",
            message: format!(
                "{url:?} is not an https address (plain http only to this machine: the token travels with every call)"
            ),
        });
    }
    if let Some(bad) = config.command_guilds.iter().find(|g| !is_snowflake(g)) {
        problems.push(Problem { field: "command_guilds", message: format!("{bad:?} is not a Discord id (a number)") });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The problems as one `Rejected` error naming each field.
pub fn rejected(problems: &[Problem]) -> ChannelError {
    let text: Vec<String> = problems.iter().map(|p| format!("discord.{}: {}", p.field, p.message)).collect();
    ChannelError::Rejected(text.join("; "))
}

/// A Discord id: a decimal snowflake.
pub fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A bot token is three dot-separated base64url parts, the first of which is the
/// bot's id. The message never repeats the token.
pub fn check_token(token: &str) -> Result<(), String> {
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if parts.len() != 3 || !parts.iter().all(|p| base64url(p)) {
        return Err(
            "does not look like a bot token (three parts separated by dots, from the Developer Portal's Bot page)"
                .into(),
        );
    }
    match decode_base64url(parts[0]) {
        Some(id) if is_snowflake(&id) => Ok(()),
        _ => Err("does not look like a bot token: its first part is not the bot's id".into()),
    }
}

/// The bot's user id, read from its token.
pub fn bot_id_of(token: &str) -> Option<String> {
    let first = token.strip_prefix("Bot ").unwrap_or(token).split('.').next()?;
    decode_base64url(first).filter(|id| is_snowflake(id))
}

/// Decodes unpadded base64url text as UTF-8.
fn decode_base64url(text: &str) -> Option<String> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        bits = (bits << 6) | value(c)?;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A token-shaped string for `bot_id` (for tests): the id's base64url, then two
/// made-up parts.
#[cfg(test)]
pub fn token_for(bot_id: &str, secret: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bot_id.as_bytes().chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    format!("{out}.GxYzAb.{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes_are_checked_without_repeating_the_token() {
        let good = token_for("123456789012345678", "s3cr3t-part_of-the-token-xx");
        assert_eq!(check_token(&good), Ok(()));
        assert_eq!(bot_id_of(&good).as_deref(), Some("123456789012345678"));
        for bad in ["", "abc", "a.b", "MTIz.x.y z", "bm90LWFuLWlk.GxYzAb.zzz"] {
            let why = check_token(bad).unwrap_err();
            assert!(bad.is_empty() || !why.contains(bad), "{why}");
        }
    }

    #[test]
    fn every_field_is_checked() {
        let config = DiscordConfig {
            api_url: "ftp://x".into(),
            command_guilds: vec!["12".into(), "guild".into()],
            ..DiscordConfig::new("nope")
        };
        let fields: Vec<&str> = validate(&config).unwrap_err().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["token", "api_url", "command_guilds"]);
    }
}
