//! The `[telegram]` section: its keys, defaults and checks, and how it builds the
//! adapter. The daemon's configuration loader reads it through [`DESCRIPTOR`].

use std::sync::Arc;

use switchboard_channel_core::settings::{read_choice, read_common, IdRule};
use switchboard_channel_core::{
    Channel, ChannelDescriptor, ChannelError, ChannelSettings, CommandSpec, CommonSettings, SettingKey, SettingsReader,
};

use crate::config::{validate, Mode, TelegramConfig, DEFAULT_API_URL, DEFAULT_POLL_TIMEOUT_SECS};
use crate::TelegramChannel;

/// The Telegram channel as the daemon registers it.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    name: "telegram",
    keys: KEYS,
    read,
    enable_hint: "set SWITCHBOARD_TELEGRAM__TOKEN to a bot token from @BotFather",
};

const KEYS: &[SettingKey] = &[
    SettingKey::secret("token"),
    SettingKey::value("api_url"),
    SettingKey::value("mode"),
    SettingKey::value("webhook_url"),
    SettingKey::value("webhook_listen"),
    SettingKey::secret("webhook_secret"),
    SettingKey::value("poll_timeout_secs"),
];

const DEFAULT_WEBHOOK_LISTEN: &str = "0.0.0.0:8443";

/// Telegram ids are integers (groups are negative).
const IDS: IdRule = IdRule { valid: |id| id.parse::<i64>().is_ok(), described: "a Telegram id (a number)" };

/// A read `[telegram]` section.
#[derive(Debug)]
struct TelegramSettings {
    common: CommonSettings,
    /// The adapter's configuration; its token is empty when none is set.
    config: TelegramConfig,
}

fn read(reader: &mut dyn SettingsReader) -> Arc<dyn ChannelSettings> {
    let common = read_common(reader, IDS);
    let token = reader.text("token").filter(|t| !t.is_empty());
    let mode = read_choice(reader, "mode", &["polling", "webhook"], |m| match m {
        "polling" => Some(Mode::Polling),
        "webhook" => Some(Mode::Webhook),
        _ => None,
    })
    .unwrap_or_default();
    let listen_text = reader.text("webhook_listen").unwrap_or_else(|| DEFAULT_WEBHOOK_LISTEN.into());
    let webhook_listen = listen_text.parse().ok();
    if webhook_listen.is_none() {
        reader.invalid("webhook_listen", format!("{listen_text:?} is not an address and port such as 0.0.0.0:8443"));
    }
    let poll_timeout_secs = match reader.number("poll_timeout_secs") {
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        None => DEFAULT_POLL_TIMEOUT_SECS,
    };
    let config = TelegramConfig {
        api_url: reader.text("api_url").unwrap_or_else(|| DEFAULT_API_URL.into()),
        mode,
        webhook_url: reader.text("webhook_url").filter(|u| !u.is_empty()),
        webhook_listen,
        webhook_secret: reader.text("webhook_secret").filter(|s| !s.is_empty()),
        poll_timeout_secs,
        commands: &[],
        // Everything else is checked with or without a token; the token's own
        // problems only when there is one.
        token: token.clone().unwrap_or_else(|| "unset".into()),
    };
    if let Err(problems) = validate(&config) {
        for p in problems.into_iter().filter(|p| p.field != "webhook_listen" || webhook_listen.is_some()) {
            reader.invalid(p.field, p.message);
        }
    }
    Arc::new(TelegramSettings { common, config: TelegramConfig { token: token.unwrap_or_default(), ..config } })
}

impl ChannelSettings for TelegramSettings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn enabled(&self) -> bool {
        !self.config.token.is_empty()
    }

    fn build(&self, commands: &'static [CommandSpec]) -> Result<Arc<dyn Channel>, ChannelError> {
        let config = TelegramConfig { commands, ..self.config.clone() };
        Ok(Arc::new(TelegramChannel::new(config)?))
    }

    fn secrets(&self) -> Vec<String> {
        let c = &self.config;
        [Some(c.token.clone()), c.webhook_secret.clone()].into_iter().flatten().filter(|s| !s.is_empty()).collect()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        let mode = match c.mode {
            Mode::Polling => "polling".to_string(),
            Mode::Webhook => format!("webhook at {}", c.webhook_url.as_deref().unwrap_or("-")),
        };
        vec![
            ("token", if c.token.is_empty() { "not set" } else { "set (environment)" }.into()),
            ("api_url", c.api_url.clone()),
            ("mode", mode),
        ]
    }
}

#[cfg(test)]
mod tests {
    use switchboard_channel_core::settings::MapReader;

    use super::*;

    #[test]
    fn without_a_token_the_channel_is_off_and_the_rest_is_still_checked() {
        let mut reader = MapReader::default();
        let settings = read(&mut reader);
        assert!(!settings.enabled());
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);

        let mut reader =
            MapReader::new(&[("mode", "webhook"), ("api_url", "ftp://x"), ("webhook_listen", "everywhere")]);
        read(&mut reader);
        assert_eq!(reader.problem_keys(), ["webhook_listen", "api_url", "webhook_url", "webhook_secret"]);
    }

    #[test]
    fn a_token_turns_it_on_and_never_shows() {
        let mut reader = MapReader::new(&[("token", "123:secret-part")]);
        let settings = read(&mut reader);
        assert!(settings.enabled());
        let shown = format!("{settings:?} {:?}", settings.describe());
        assert!(!shown.contains("secret-part"), "{shown}");
    }
}
