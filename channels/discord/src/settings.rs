//! The `[discord]` section: its keys, defaults and checks, and how it builds the
//! adapter. The daemon's configuration loader reads it through [`DESCRIPTOR`].

use std::sync::Arc;
use std::time::Duration;

use switchboard_channel_core::settings::{read_common, IdRule};
use switchboard_channel_core::{
    Channel, ChannelDescriptor, ChannelError, ChannelSettings, CommandSpec, CommonSettings, SettingKey, SettingsReader,
};

use crate::config::{
    is_snowflake, validate, CatchUp, DiscordConfig, DEFAULT_API_URL, DEFAULT_CATCH_UP_HOURS, DEFAULT_CATCH_UP_MESSAGES,
    MAX_CATCH_UP_HOURS,
};
use crate::DiscordChannel;

/// The Discord channel as the daemon registers it.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    name: "discord",
    keys: KEYS,
    read,
    enable_hint: "set SWITCHBOARD_DISCORD__TOKEN to a bot token from the Discord Developer Portal",
};

const KEYS: &[SettingKey] = &[
    SettingKey::secret("token"),
    SettingKey::value("api_url"),
    SettingKey::value("command_guilds"),
    SettingKey::value("catch_up_hours"),
    SettingKey::value("catch_up_messages"),
];

/// Discord ids are snowflakes: users, guilds and channels alike.
const IDS: IdRule = IdRule { valid: is_snowflake, described: "a Discord id (a number)" };

/// A read `[discord]` section.
#[derive(Debug)]
struct DiscordSettings {
    common: CommonSettings,
    /// The adapter's configuration; its token is empty when none is set.
    config: DiscordConfig,
}

fn read(reader: &mut dyn SettingsReader) -> Arc<dyn ChannelSettings> {
    let common = read_common(reader, IDS);
    let token = reader.text("token").filter(|t| !t.is_empty());
    let mut bounded = |key: &str, max: u64, default: u64| match reader.number(key) {
        Some(n) if n > max => {
            reader.invalid(key, format!("must be between 0 and {max}"));
            default
        }
        other => other.unwrap_or(default),
    };
    let hours = bounded("catch_up_hours", MAX_CATCH_UP_HOURS, DEFAULT_CATCH_UP_HOURS);
    let messages = bounded("catch_up_messages", 100, DEFAULT_CATCH_UP_MESSAGES);
    let config = DiscordConfig {
        token: token.clone().unwrap_or_default(),
        api_url: reader.text("api_url").unwrap_or_else(|| DEFAULT_API_URL.into()),
        command_guilds: reader.list("command_guilds").unwrap_or_default(),
        catch_up: CatchUp { max_age: Duration::from_secs(hours * 3600), max_messages: messages as usize },
        commands: &[],
    };
    if let Err(problems) = validate(&config) {
        // The token's own problems only when there is one.
        for p in problems.into_iter().filter(|p| p.field != "token" || token.is_some()) {
            reader.invalid(p.field, p.message);
        }
    }
    Arc::new(DiscordSettings { common, config })
}

impl ChannelSettings for DiscordSettings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn enabled(&self) -> bool {
        !self.config.token.is_empty()
    }

    fn build(&self, commands: &'static [CommandSpec]) -> Result<Arc<dyn Channel>, ChannelError> {
        let config = DiscordConfig { commands, ..self.config.clone() };
        Ok(Arc::new(DiscordChannel::new(config)?))
    }

    fn secrets(&self) -> Vec<String> {
        [self.config.token.clone()].into_iter().filter(|s| !s.is_empty()).collect()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        let commands = match c.command_guilds.is_empty() {
            true => "global".to_string(),
            false => format!("in guilds {}", c.command_guilds.join(", ")),
        };
        vec![
            ("token", if c.token.is_empty() { "not set" } else { "set (environment)" }.into()),
            ("api_url", c.api_url.clone()),
            ("slash commands", commands),
            (
                "catch up",
                format!(
                    "{} h, at most {} messages per channel",
                    c.catch_up.max_age.as_secs() / 3600,
                    c.catch_up.max_messages
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use switchboard_channel_core::settings::MapReader;

    use super::*;
    use crate::config::token_for;

    #[test]
    fn without_a_token_the_channel_is_off_and_the_rest_is_still_checked() {
        let mut reader = MapReader::default();
        assert!(!read(&mut reader).enabled());
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);

        let mut reader =
            MapReader::new(&[("api_url", "ftp://x"), ("command_guilds", "1, two"), ("catch_up_messages", "500")]);
        read(&mut reader);
        assert_eq!(reader.problem_keys(), ["catch_up_messages", "api_url", "command_guilds"]);
    }

    #[test]
    fn a_token_turns_it_on_and_never_shows() {
        let token = token_for("42", "the-secret-part-of-it");
        let mut reader = MapReader::new(&[("token", token.as_str()), ("allowed_groups", "123,456")]);
        let settings = read(&mut reader);
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);
        assert!(settings.enabled());
        let shown = format!("{settings:?} {:?}", settings.describe());
        assert!(!shown.contains("the-secret-part"), "{shown}");
        let mut reader = MapReader::new(&[("token", "not-a-token")]);
        read(&mut reader);
        assert_eq!(reader.problem_keys(), ["token"]);
    }
}
