//! Adapter configuration ([`SlackConfig`]) and its validation.

use std::fmt;
use std::net::SocketAddr;

use switchboard_channel_core::settings::is_loopback_http;
use switchboard_channel_core::{ChannelError, CommandSpec};

/// The public Web API's base address.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";
/// The slash command the app manifest declares.
pub const DEFAULT_SLASH_COMMAND: &str = "/switchboard";
/// The bot token's scopes the adapter uses (the manifest asks for these).
pub const SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "im:write",
    "im:read",
    "users:read",
    "commands",
    "assistant:write",
];

/// Where HTTP mode listens by default.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:3000";

/// How events reach the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A WebSocket the app opens (no public URL needed).
    #[default]
    Socket,
    /// Slack POSTs to a public URL (the Events API and interactivity).
    Http,
}

/// Everything the adapter needs to run one Slack app.
#[derive(Clone)]
pub struct SlackConfig {
    /// `xoxb-…`: the bot's token for the Web API.
    pub bot_token: String,
    /// `xapp-…`: the app-level token that opens Socket Mode connections.
    pub app_token: String,
    /// HTTP mode: the signing secret requests are verified against.
    pub signing_secret: String,
    pub mode: Mode,
    /// HTTP mode: where the endpoint listens.
    pub http_listen: SocketAddr,
    /// `https://slack.com/api/`, or a fake's address in tests.
    pub api_url: String,
    /// The slash command (`/switchboard`) whose first word picks the command.
    pub slash_command: String,
    /// Shown when someone opens the assistant pane: `(title, message)` pairs.
    pub suggested_prompts: Vec<(String, String)>,
    /// The command table (`/switchboard status`, …).
    pub commands: &'static [CommandSpec],
}

impl SlackConfig {
    /// Socket Mode against the public API with the default slash command.
    pub fn new(bot_token: impl Into<String>, app_token: impl Into<String>) -> SlackConfig {
        SlackConfig {
            bot_token: bot_token.into(),
            app_token: app_token.into(),
            signing_secret: String::new(),
            mode: Mode::Socket,
            http_listen: DEFAULT_HTTP_LISTEN.parse().expect("a valid address"),
            api_url: DEFAULT_API_URL.into(),
            slash_command: DEFAULT_SLASH_COMMAND.into(),
            suggested_prompts: default_prompts(),
            commands: &[],
        }
    }
}

/// The assistant pane's suggestions when none are configured.
pub fn default_prompts() -> Vec<(String, String)> {
    vec![
        ("What can you do?".into(), "What can you do, and what do you remember about me?".into()),
        ("Summarise".into(), "Summarise what we talked about last.".into()),
    ]
}

/// Tokens never appear in debug output.
impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("bot_token", &"<redacted>")
            .field("app_token", &"<redacted>")
            .field("signing_secret", &"<redacted>")
            .field("mode", &self.mode)
            .field("http_listen", &self.http_listen)
            .field("api_url", &self.api_url)
            .field("slash_command", &self.slash_command)
            .field("suggested_prompts", &self.suggested_prompts.len())
            .finish()
    }
}

/// One problem with the configuration, by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

/// Every problem with `config`; none for a usable one. Makes no request.
pub fn validate(config: &SlackConfig) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut token = |field: &'static str, value: &str, prefix: &str, what: &str| {
        if !value.starts_with(prefix) || value.len() < prefix.len() + 8 || value.contains(char::is_whitespace) {
            problems.push(Problem { field, message: format!("does not look like {what} (it starts with {prefix})") });
        }
    };
    token("bot_token", &config.bot_token, "xoxb-", "a bot token");
    match config.mode {
        Mode::Socket => token("app_token", &config.app_token, "xapp-", "an app-level token with connections:write"),
        Mode::Http if config.signing_secret.len() < 16 => problems.push(Problem {
            field: "signing_secret",
            message: "HTTP mode needs the app's signing secret (Basic Information page)".into(),
        }),
        Mode::Http => {}
    }
    let url = config.api_url.trim();
    if !(url.starts_with("https://") || is_loopback_http(url)) {
        problems.push(Problem {
            field: "api_url",
            message: format!(
                "{url:?} is not an https address (plain http only to this machine: the tokens travel with every call)"
            ),
        });
    }
    let slash = &config.slash_command;
    if !slash.starts_with('/')
        || slash.len() < 2
        || slash.len() > 32
        || slash[1..].contains(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    {
        problems.push(Problem {
            field: "slash_command",
            message: format!("{slash:?} is not a slash command such as /switchboard"),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The problems as one `Rejected` error naming each field.
pub fn rejected(problems: &[Problem]) -> ChannelError {
    let text: Vec<String> = problems.iter().map(|p| format!("slack.{}: {}", p.field, p.message)).collect();
    ChannelError::Rejected(text.join("; "))
}

/// A Slack id (`U012AB3CD`, `C123`, `D123`), in Slack's upper case.
pub fn is_slack_id(id: &str) -> bool {
    id.len() >= 2
        && id.len() <= 24
        && id.starts_with(|c: char| c.is_ascii_uppercase())
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_the_slash_command_are_checked_without_repeating_secrets() {
        let good = SlackConfig::new("xoxb-1234-5678-abcdef", "xapp-1-A111-222-abcdef");
        assert_eq!(validate(&good), Ok(()));
        let bad = SlackConfig {
            api_url: "ftp://x".into(),
            slash_command: "switchboard".into(),
            ..SlackConfig::new("xoxp-personal-token-secret", "xoxb-wrong-kind-secret")
        };
        let problems = validate(&bad).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["bot_token", "app_token", "api_url", "slash_command"]);
        assert!(problems.iter().all(|p| !p.message.contains("secret")), "{problems:?}");
        let http = SlackConfig { mode: Mode::Http, ..SlackConfig::new("xoxb-1234-5678-abcdef", "") };
        assert_eq!(validate(&http).unwrap_err()[0].field, "signing_secret");
    }

    #[test]
    fn slack_ids_are_upper_case() {
        assert!(is_slack_id("U012AB3CD") && is_slack_id("C1"));
        assert!(!is_slack_id("u012ab3cd") && !is_slack_id("U") && !is_slack_id("12"));
    }
}

#[cfg(test)]
mod manifest {
    /// The app manifest a workspace admin pastes asks for what the adapter uses.
    #[test]
    fn the_manifest_asks_for_every_scope_and_event_the_adapter_needs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/slack-app-manifest.yaml");
        let manifest = std::fs::read_to_string(path).expect("config/slack-app-manifest.yaml");
        let scopes = super::SCOPES;
        let events = ["app_mention", "message.channels", "message.im", "assistant_thread_started"];
        for needed in scopes.iter().chain(events.iter()) {
            assert!(manifest.contains(&format!("- {needed}\n")), "{needed} is missing from the manifest");
        }
        assert!(manifest.contains(&format!("command: {}", super::DEFAULT_SLASH_COMMAND)));
        assert!(manifest.contains("socket_mode_enabled: true") && manifest.contains("is_enabled: true"));
    }
}
