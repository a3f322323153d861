//! Adapter configuration (`TelegramConfig`, `Mode`) and its validation.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::ChannelError;
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

#[derive(Clone)]
pub struct TelegramConfig {
    pub token: String,
    /// e.g. "https://api.telegram.org" or a fake's `api_url()`.
    pub api_url: String,
    pub mode: Mode,
    /// Public URL Telegram posts to (webhook mode).
    pub webhook_url: Option<String>,
    /// Where we listen (webhook mode).
    pub webhook_listen: Option<SocketAddr>,
    /// Required in webhook mode: Telegram sends it in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: Option<String>,
    /// Long-poll timeout; at most 16 (teloxide's client times out at 17 s).
    pub poll_timeout_secs: u32,
    /// `(command, description)` registered with setMyCommands at start.
    pub commands: Vec<(String, String)>,
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
            commands: Vec::new(),
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
            .field("commands", &self.commands)
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

fn rejected(message: impl Into<String>) -> ChannelError {
    ChannelError::Rejected(format!("telegram config: {}", message.into()))
}

pub(crate) fn validate(config: &TelegramConfig) -> Result<Validated, ChannelError> {
    if config.token.trim().is_empty() {
        return Err(rejected("token is empty"));
    }
    if config.token.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(rejected("token contains whitespace or '/'"));
    }
    let api_url = parse_http_url("api_url", &config.api_url)?;
    if config.poll_timeout_secs > MAX_POLL_TIMEOUT_SECS {
        return Err(rejected(format!(
            "poll_timeout_secs is {}, but must be at most {MAX_POLL_TIMEOUT_SECS} (the HTTP client times out at 17 s)",
            config.poll_timeout_secs
        )));
    }
    let commands = config.commands.iter().map(|(c, d)| validate_command(c, d)).collect::<Result<Vec<_>, _>>()?;
    let webhook = match config.mode {
        Mode::Polling => None,
        Mode::Webhook => Some(validate_webhook(config)?),
    };
    Ok(Validated { api_url, webhook, poll_timeout_secs: config.poll_timeout_secs, commands })
}

/// An absolute http(s) URL with a host; a trailing slash is dropped so teloxide
/// does not build `//bot...` paths.
fn parse_http_url(field: &str, raw: &str) -> Result<Url, ChannelError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| rejected(format!("{field} {raw:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(rejected(format!("{field} {raw:?} must start with http:// or https://")));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(rejected(format!("{field} {raw:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(rejected(format!("{field} {raw:?} must not have a query or fragment")));
    }
    Ok(url)
}

/// Telegram's rules: 1-32 of `a-z0-9_`, description 1-256 characters. A leading
/// '/' is tolerated.
fn validate_command(command: &str, description: &str) -> Result<(String, String), ChannelError> {
    let name = command.trim().trim_start_matches('/');
    let valid = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(rejected(format!("command {command:?} must be 1-32 characters of a-z, 0-9 and _")));
    }
    let description = description.trim();
    if !(1..=256).contains(&description.chars().count()) {
        return Err(rejected(format!("the description of command {command:?} must be 1-256 characters")));
    }
    Ok((name.to_owned(), description.to_owned()))
}

fn validate_webhook(config: &TelegramConfig) -> Result<WebhookSettings, ChannelError> {
    let raw = config.webhook_url.as_deref().ok_or_else(|| rejected("webhook mode needs webhook_url"))?;
    let url = Url::parse(raw.trim()).map_err(|e| rejected(format!("webhook_url {raw:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(rejected(format!("webhook_url {raw:?} must be an absolute http(s) URL")));
    }
    let listen = config.webhook_listen.ok_or_else(|| rejected("webhook mode needs webhook_listen"))?;
    // Without a secret anyone who finds the URL could inject messages as any user.
    let secret = config
        .webhook_secret
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| rejected("webhook mode needs webhook_secret"))?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if secret.len() > 256 || !secret.chars().all(allowed) {
        return Err(rejected("webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"));
    }
    let path = url.path().to_owned();
    Ok(WebhookSettings { url, listen, secret, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TelegramConfig {
        let mut config = TelegramConfig::new("123:abc");
        config.api_url = "http://127.0.0.1:1/".into();
        config
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
            let err = validate(&c).expect_err(bad).to_string();
            assert!(err.contains("api_url"), "{err}");
        }
        let mut c = config();
        c.poll_timeout_secs = 30;
        assert!(validate(&c).expect_err("timeout").to_string().contains("poll_timeout_secs"));
    }

    #[test]
    fn commands_are_checked_and_a_leading_slash_is_tolerated() {
        let mut c = config();
        c.commands = vec![("/help".into(), "Show help".into())];
        assert_eq!(validate(&c).expect("valid").commands, vec![("help".to_owned(), "Show help".to_owned())]);
        c.commands = vec![("Help-Me".into(), "x".into())];
        assert!(validate(&c).is_err());
        c.commands = vec![("help".into(), "".into())];
        assert!(validate(&c).is_err());
    }

    #[test]
    fn webhook_mode_needs_url_listen_address_and_a_clean_secret() {
        let mut c = config();
        c.mode = Mode::Webhook;
        assert!(validate(&c).expect_err("no url").to_string().contains("webhook_url"));
        c.webhook_url = Some("https://bot.example.com/tg/hook".into());
        assert!(validate(&c).expect_err("no listen").to_string().contains("webhook_listen"));
        c.webhook_listen = Some("127.0.0.1:8443".parse().expect("addr"));
        assert!(validate(&c).expect_err("no secret").to_string().contains("webhook_secret"));
        c.webhook_secret = Some("has space".into());
        assert!(validate(&c).is_err());
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
