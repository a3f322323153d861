//! The `[slack]` section: its keys, defaults and checks, and how it builds the
//! adapter. The daemon's configuration loader reads it through [`DESCRIPTOR`].

use std::sync::Arc;

use switchboard_channel_core::settings::{read_choice, read_common, IdRule};
use switchboard_channel_core::{
    Channel, ChannelDescriptor, ChannelError, ChannelSettings, CommandSpec, CommonSettings, SettingKey, SettingsReader,
};

use crate::config::{
    default_prompts, is_slack_id, validate, Mode, SlackConfig, DEFAULT_API_URL, DEFAULT_HTTP_LISTEN,
    DEFAULT_SLASH_COMMAND,
};
use crate::SlackChannel;

/// The Slack channel as the daemon registers it.
pub const DESCRIPTOR: ChannelDescriptor = ChannelDescriptor {
    name: "slack",
    keys: KEYS,
    read,
    enable_hint:
        "set SWITCHBOARD_SLACK__BOT_TOKEN and SWITCHBOARD_SLACK__APP_TOKEN (see config/slack-app-manifest.yaml)",
};

const KEYS: &[SettingKey] = &[
    SettingKey::secret("bot_token"),
    SettingKey::secret("app_token"),
    SettingKey::secret("signing_secret"),
    SettingKey::value("mode"),
    SettingKey::value("http_listen"),
    SettingKey::value("api_url"),
    SettingKey::value("slash_command"),
    SettingKey::value("suggested_prompts"),
];

/// Slack ids are upper case (`U012AB3CD`); the environment may deliver them lower case.
const IDS: IdRule =
    IdRule { valid: |id| is_slack_id(&id.to_ascii_uppercase()), described: "a Slack id such as U012AB3CD" };

/// A read `[slack]` section.
#[derive(Debug)]
struct SlackSettings {
    common: CommonSettings,
    /// The adapter's configuration; its bot token is empty when none is set.
    config: SlackConfig,
}

fn read(reader: &mut dyn SettingsReader) -> Arc<dyn ChannelSettings> {
    let mut common = read_common(reader, IDS);
    upper_case_ids(&mut common);
    let secret = |reader: &mut dyn SettingsReader, key: &str| reader.text(key).filter(|t| !t.is_empty());
    let bot_token = secret(reader, "bot_token");
    let app_token = secret(reader, "app_token").unwrap_or_default();
    let signing_secret = secret(reader, "signing_secret").unwrap_or_default();
    let mode = read_choice(reader, "mode", &["socket", "http"], |m| match m {
        "socket" => Some(Mode::Socket),
        "http" => Some(Mode::Http),
        _ => None,
    })
    .unwrap_or_default();
    let listen_text = reader.text("http_listen").unwrap_or_else(|| DEFAULT_HTTP_LISTEN.into());
    let http_listen = listen_text.parse().unwrap_or_else(|_| {
        reader.invalid("http_listen", format!("{listen_text:?} is not an address and port such as 0.0.0.0:3000"));
        DEFAULT_HTTP_LISTEN.parse().expect("a valid address")
    });
    let suggested_prompts = match reader.list("suggested_prompts") {
        None => default_prompts(),
        Some(list) => list
            .into_iter()
            .map(|p| match p.split_once('|') {
                Some((title, message)) => (title.trim().to_string(), message.trim().to_string()),
                None => (p.chars().take(40).collect(), p.clone()),
            })
            .collect(),
    };
    let config = SlackConfig {
        bot_token: bot_token.clone().unwrap_or_default(),
        app_token,
        signing_secret,
        mode,
        http_listen,
        api_url: reader.text("api_url").unwrap_or_else(|| DEFAULT_API_URL.into()),
        slash_command: reader.text("slash_command").unwrap_or_else(|| DEFAULT_SLASH_COMMAND.into()),
        suggested_prompts,
        commands: &[],
    };
    if let Err(problems) = validate(&config) {
        // Token problems only when Slack is turned on (a bot token is set).
        let on = bot_token.is_some();
        for p in problems.into_iter().filter(|p| on || !matches!(p.field, "bot_token" | "app_token" | "signing_secret"))
        {
            reader.invalid(p.field, p.message);
        }
    }
    Arc::new(SlackSettings { common, config })
}

/// Ids as Slack spells them, whatever case the configuration used.
fn upper_case_ids(common: &mut CommonSettings) {
    let access = &mut common.access;
    for list in [&mut access.allowed_users, &mut access.admins, &mut access.allowed_groups] {
        list.iter_mut().for_each(|id| *id = id.to_ascii_uppercase());
    }
    access.groups =
        std::mem::take(&mut access.groups).into_iter().map(|(id, p)| (id.to_ascii_uppercase(), p)).collect();
}

impl ChannelSettings for SlackSettings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn enabled(&self) -> bool {
        !self.config.bot_token.is_empty()
    }

    fn build(&self, commands: &'static [CommandSpec]) -> Result<Arc<dyn Channel>, ChannelError> {
        let config = SlackConfig { commands, ..self.config.clone() };
        Ok(Arc::new(SlackChannel::new(config)?))
    }

    fn secrets(&self) -> Vec<String> {
        let c = &self.config;
        [c.bot_token.clone(), c.app_token.clone(), c.signing_secret.clone()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        let set = |s: &str| if s.is_empty() { "not set" } else { "set (environment)" }.to_string();
        let mode = match c.mode {
            Mode::Socket => "socket".to_string(),
            Mode::Http => format!("http on {}", c.http_listen),
        };
        vec![
            ("bot_token", set(&c.bot_token)),
            ("app_token", set(&c.app_token)),
            ("signing_secret", set(&c.signing_secret)),
            ("mode", mode),
            ("api_url", c.api_url.clone()),
            ("slash_command", c.slash_command.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use switchboard_channel_core::settings::MapReader;

    use super::*;

    #[test]
    fn off_without_a_bot_token_and_ids_come_out_upper_case() {
        let mut reader = MapReader::default();
        assert!(!read(&mut reader).enabled());
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);
        let mut reader = MapReader::new(&[
            ("bot_token", "xoxb-1111-2222-secretpart"),
            ("app_token", "xapp-1-A1-2-secretpart"),
            ("admins", "u012ab3cd"),
            ("groups.c0123", "open"),
        ]);
        let settings = read(&mut reader);
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);
        assert!(settings.enabled());
        assert_eq!(settings.common().access.admins, ["U012AB3CD"]);
        assert!(settings.common().access.groups.contains_key("C0123"));
        let shown = format!("{settings:?} {:?}", settings.describe());
        assert!(!shown.contains("secretpart"), "{shown}");
    }

    #[test]
    fn a_bad_token_or_mode_is_named() {
        let mut reader = MapReader::new(&[("bot_token", "xoxp-user-token"), ("mode", "carrier-pigeon")]);
        read(&mut reader);
        assert_eq!(reader.problem_keys(), ["mode", "bot_token", "app_token"]);
    }
}
