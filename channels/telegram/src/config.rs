//! Adapter configuration (`TelegramConfig`, `Mode`) and its validation.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ChannelError, CommandSpec};
use url::Url;

/// The public Bot API.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// Long-poll timeout used when none is configured.
pub const DEFAULT_POLL_TIMEOUT_SECS: u32 = 10;

/// teloxide's HTTP client gives up after 17 s; a long poll must end before that.
pub const MAX_POLL_TIMEOUT_SECS: u32 = 16;

/// How updates reach the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// We call getUpdates ourselves (no public URL needed).
    #[default]
    Polling,
    /// Telegram POSTs updates to `webhook_url`; we listen on `webhook_listen`.
    Webhook,
}

/// Everything the adapter needs to run one bot.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The bot token from @BotFather.
    pub token: String,
    /// e.g. "https://api.telegram.org" or a fake's `api_url()`.
    pub api_url: String,
    /// Polling or webhook.
    pub mode: Mode,
    /// Public URL Telegram posts to (webhook mode).
    pub webhook_url: Option<String>,
    /// Where we listen (webhook mode).
    pub webhook_listen: Option<SocketAddr>,
    /// Required in webhook mode: Telegram sends it in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: Option<String>,
    /// Long-poll timeout; at most 16 (teloxide's client times out at 17 s).
    pub poll_timeout_secs: u32,
    /// Registered with setMyCommands at start; a typed `/name` of one of them
    /// arrives as a command.
    pub commands: &'static [CommandSpec],
}

impl TelegramConfig {
    /// Polling against the public Bot API with the default timeout and no commands.
    pub fn new(token: impl Into<String>) -> TelegramConfig {
        TelegramConfig {
            token: token.into(),
            api_url: DEFAULT_API_URL.to_owned(),
            mode: Mode::Polling,
            webhook_url: None,
            webhook_listen: None,
            webhook_secret: None,
            poll_timeout_secs: DEFAULT_POLL_TIMEOUT_SECS,
            commands: &[],
        }
    }
}

/// The token never appears in debug output.
impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("mode", &self.mode)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_listen", &self.webhook_listen)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<redacted>"))
            .field("poll_timeout_secs", &self.poll_timeout_secs)
            .field("commands", &self.commands.len())
            .finish()
    }
}

/// Webhook settings after validation.
#[derive(Clone, Debug)]
pub(crate) struct WebhookSettings {
    pub url: Url,
    pub listen: SocketAddr,
    pub secret: String,
    /// The URL's path: the only one the listener answers.
    pub path: String,
}

/// A configuration that passed every check.
#[derive(Clone, Debug)]
pub(crate) struct Validated {
    pub api_url: Url,
    pub webhook: Option<WebhookSettings>,
    pub poll_timeout_secs: u32,
    pub commands: Vec<(String, String)>,
}

/// One thing wrong with a configuration: the field (as its settings key) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `api_url`, `webhook_secret`, …
    pub field: &'static str,
    /// What is wrong, without the value of a secret.
    pub message: String,
}

/// All problems as one `Rejected` error, for programmatic construction.
pub(crate) fn rejected(problems: &[Problem]) -> ChannelError {
    let text: Vec<String> = problems.iter().map(|p| format!("{} {}", p.field, p.message)).collect();
    ChannelError::Rejected(format!("telegram config: {}", text.join("; ")))
}

/// Checks every field; returns every problem found, not just the first.
pub(crate) fn validate(config: &TelegramConfig) -> Result<Validated, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |field, message: String| problems.push(Problem { field, message });
    if config.token.trim().is_empty() {
        problem("token", "is empty".into());
    } else if config.token.chars().any(|c| c.is_whitespace() || c == '/') {
        problem("token", "contains whitespace or '/'".into());
    }
    let api_url = parse_http_url(&config.api_url).map_err(|m| problem("api_url", m)).ok();
    if config.poll_timeout_secs > MAX_POLL_TIMEOUT_SECS {
        problem(
            "poll_timeout_secs",
            format!(
                "is {}, but must be at most {MAX_POLL_TIMEOUT_SECS} (the HTTP client times out at 17 s)",
                config.poll_timeout_secs
            ),
        );
    }
    let mut commands = Vec::new();
    for spec in config.commands {
        match validate_command(spec) {
            Ok(c) => commands.push(c),
            Err(m) => problem("commands", m),
        }
    }
    let webhook = match config.mode {
        Mode::Polling => None,
        Mode::Webhook => validate_webhook(config, &mut problem),
    };
    match api_url {
        Some(api_url) if problems.is_empty() => {
            Ok(Validated { api_url, webhook, poll_timeout_secs: config.poll_timeout_secs, commands })
        }
        _ => Err(problems),
    }
}

/// An absolute http(s) URL with a host; a trailing slash is dropped so teloxide
/// does not build `//bot...` paths.
fn parse_http_url(raw: &str) -> Result<Url, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| format!("{raw:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must start with http:// or https://"));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{raw:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// Telegram's rules: 1-32 of `a-z0-9_`, description 1-256 characters.
fn validate_command(spec: &CommandSpec) -> Result<(String, String), String> {
    let name = spec.name;
    let valid = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!("{name:?} must be 1-32 characters of a-z, 0-9 and _"));
    }
    let description = spec.description.trim();
    if !(1..=256).contains(&description.chars().count()) {
        return Err(format!("the description of {name:?} must be 1-256 characters"));
    }
    Ok((name.to_owned(), description.to_owned()))
}

fn validate_webhook(
    config: &TelegramConfig,
    problem: &mut impl FnMut(&'static str, String),
) -> Option<WebhookSettings> {
    let url = match config.webhook_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => {
            problem("webhook_url", "is needed in webhook mode: the public https URL Telegram posts to".into());
            None
        }
        Some(raw) => match Url::parse(raw) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base() && url.host_str().is_some() =>
            {
                Some(url)
            }
            _ => {
                problem("webhook_url", format!("{raw:?} must be an absolute http(s) URL"));
                None
            }
        },
    };
    let listen = config.webhook_listen;
    if listen.is_none() {
        problem("webhook_listen", "is needed in webhook mode: an address and port such as 0.0.0.0:8443".into());
    }
    // Without a secret anyone who finds the URL could inject messages as any user.
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let secret = match config.webhook_secret.clone().filter(|s| !s.is_empty()) {
        None => {
            problem("webhook_secret", "is needed in webhook mode (SWITCHBOARD_TELEGRAM__WEBHOOK_SECRET)".into());
            None
        }
        Some(s) if s.len() > 256 || !s.chars().all(allowed) => {
            problem("webhook_secret", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -".into());
            None
        }
        Some(s) => Some(s),
    };
    let (url, listen, secret) = (url?, listen?, secret?);
    let path = url.path().to_owned();
    Some(WebhookSettings { url, listen, secret, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TelegramConfig {
        let mut config = TelegramConfig::new("123:abc");
        config.api_url = "http://127.0.0.1:1/".into();
        config
    }

    fn fields(config: &TelegramConfig) -> Vec<&'static str> {
        validate(config).err().unwrap_or_default().iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_trailing_slash_is_dropped_from_the_api_url() {
        let validated = validate(&config()).expect("valid");
        assert_eq!(validated.api_url.as_str(), "http://127.0.0.1:1/");
        let mut nested = config();
        nested.api_url = "https://example.com/tbas/".into();
        assert_eq!(validate(&nested).expect("valid").api_url.as_str(), "https://example.com/tbas");
    }

    #[test]
    fn bad_urls_and_timeouts_are_rejected_with_the_field_named() {
        for bad in ["not a url", "ftp://x.org", "mailto:a@b.c", "http://x.org/?q=1"] {
            let mut c = config();
            c.api_url = bad.into();
            assert_eq!(fields(&c), ["api_url"], "{bad}");
        }
        let mut c = config();
        c.poll_timeout_secs = 30;
        c.token = "has space".into();
        assert_eq!(fields(&c), ["token", "poll_timeout_secs"], "every problem, not the first");
    }

    #[test]
    fn commands_are_checked() {
        const GOOD: &[CommandSpec] = &[CommandSpec { name: "help", description: "Show help", argument: None }];
        const BAD_NAME: &[CommandSpec] = &[CommandSpec { name: "Help-Me", description: "x", argument: None }];
        const NO_TEXT: &[CommandSpec] = &[CommandSpec { name: "help", description: " ", argument: None }];
        let mut c = config();
        c.commands = GOOD;
        assert_eq!(validate(&c).expect("valid").commands, vec![("help".to_owned(), "Show help".to_owned())]);
        c.commands = BAD_NAME;
        assert_eq!(fields(&c), ["commands"]);
        c.commands = NO_TEXT;
        assert_eq!(fields(&c), ["commands"]);
    }

    #[test]
    fn webhook_mode_needs_url_listen_address_and_a_clean_secret() {
        let mut c = config();
        c.mode = Mode::Webhook;
        assert_eq!(fields(&c), ["webhook_url", "webhook_listen", "webhook_secret"]);
        c.webhook_url = Some("https://bot.example.com/tg/hook".into());
        c.webhook_listen = Some("127.0.0.1:8443".parse().expect("addr"));
        c.webhook_secret = Some("has space".into());
        assert_eq!(fields(&c), ["webhook_secret"]);
        c.webhook_secret = Some("s3cret_-X".into());
        let hook = validate(&c).expect("valid").webhook.expect("webhook settings");
        assert_eq!(hook.path, "/tg/hook");
    }

    #[test]
    fn debug_output_hides_the_token_and_secret() {
        let mut c = config();
        c.webhook_secret = Some("topsecret".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("123:abc") && !shown.contains("topsecret"), "{shown}");
    }
}
