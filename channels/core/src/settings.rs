//! Channel settings: the access block every channel section shares, and the
//! registration a channel crate offers the daemon's configuration loader.
//!
//! A channel crate owns its section (`[telegram]`): which keys it has, which are
//! secrets, their defaults and their validation. It reads them through a
//! [`SettingsReader`] the loader provides, so problems are reported with the file
//! or environment variable they came from, together with every other problem.
//! The gateway reads only the [`CommonSettings`] of a section.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::{Channel, ChannelError};
use crate::commands::CommandSpec;

/// Who may talk to the bot in direct chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPolicy {
    /// Unknown people get a code that an admin approves.
    Pairing,
    /// Only `allowed_users` and `admins`.
    Allowlist,
    /// Everyone.
    Open,
}

impl DmPolicy {
    /// The spellings the configuration accepts.
    pub const NAMES: &'static [&'static str] = &["pairing", "allowlist", "open"];

    /// Parses a configured spelling.
    pub fn parse(text: &str) -> Option<DmPolicy> {
        match text {
            "pairing" => Some(DmPolicy::Pairing),
            "allowlist" => Some(DmPolicy::Allowlist),
            "open" => Some(DmPolicy::Open),
            _ => None,
        }
    }
}

/// How the bot behaves in a group it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPolicy {
    /// Answer only when mentioned or replied to.
    Mention,
    /// Answer every message.
    Open,
    /// Record messages in the conversation without answering.
    Listen,
    /// Ignore the group.
    Disabled,
}

impl GroupPolicy {
    /// The spellings the configuration accepts.
    pub const NAMES: &'static [&'static str] = &["mention", "open", "listen", "disabled"];

    /// Parses a configured spelling.
    pub fn parse(text: &str) -> Option<GroupPolicy> {
        match text {
            "mention" => Some(GroupPolicy::Mention),
            "open" => Some(GroupPolicy::Open),
            "listen" => Some(GroupPolicy::Listen),
            "disabled" => Some(GroupPolicy::Disabled),
            _ => None,
        }
    }
}

/// What happens to messages that arrive while the conversation's turn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// They wait, and the next turn answers them all at once (one model call,
    /// each message attributed and time-stamped).
    Collect,
    /// Each waits for its own turn, in order.
    Queue,
    /// The running turn stops at its next safe point and a new one answers
    /// everything that waits.
    Interrupt,
}

impl Busy {
    /// The spellings the configuration accepts.
    pub const NAMES: &'static [&'static str] = &["collect", "queue", "interrupt"];

    /// Parses a configured spelling.
    pub fn parse(text: &str) -> Option<Busy> {
        match text {
            "collect" => Some(Busy::Collect),
            "queue" => Some(Busy::Queue),
            "interrupt" => Some(Busy::Interrupt),
            _ => None,
        }
    }
}

/// How a busy conversation takes more messages, and how much may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusySettings {
    /// What happens to messages arriving mid-turn.
    pub mode: Busy,
    /// The most messages that wait for one conversation; more are turned away
    /// with a notice.
    pub max_waiting: usize,
    /// The most characters of text that wait for one conversation.
    pub max_waiting_chars: usize,
    /// The most messages one guest may send in a minute (0: no limit); more are
    /// turned away, with a notice the first time.
    pub guest_messages_per_minute: u32,
}

impl Default for BusySettings {
    fn default() -> Self {
        BusySettings { mode: Busy::Collect, max_waiting: 20, max_waiting_chars: 20_000, guest_messages_per_minute: 6 }
    }
}

/// The access block, the same in every channel section. Ids are the platform's
/// own (`42`, `U012AB3CD`), without the channel prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// Who may talk in direct chats.
    pub dm_policy: DmPolicy,
    /// People who may always talk to the bot.
    pub allowed_users: Vec<String>,
    /// People who may also run admin commands; always allowed.
    pub admins: Vec<String>,
    /// The default behaviour in groups.
    pub group_policy: GroupPolicy,
    /// Groups (chat, channel or server ids) the bot works in; empty: all.
    pub allowed_groups: Vec<String>,
    /// Per-group policy overrides, by group id.
    pub groups: BTreeMap<String, GroupPolicy>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            dm_policy: DmPolicy::Pairing,
            allowed_users: Vec::new(),
            admins: Vec::new(),
            group_policy: GroupPolicy::Mention,
            allowed_groups: Vec::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// What the gateway reads from a channel section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommonSettings {
    /// Who may talk to the bot, where.
    pub access: AccessSettings,
    /// At most one streaming edit per chat in this interval; `None`: the
    /// platform's own minimum ([`crate::Capabilities::min_edit_interval`]).
    /// Never below that minimum.
    pub edit_interval: Option<Duration>,
    /// Messages arriving while a turn runs.
    pub busy: BusySettings,
}

/// Whether `url` is plain `http://` to this machine (127.0.0.0/8, `localhost`,
/// `[::1]`): the only place a platform's API may be reached without TLS (a
/// fake in tests, a local proxy), since the bot's token travels with every call.
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a key holds one value or a table of values keyed by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A string, number, flag or list.
    Value,
    /// A table whose keys are ids: `[telegram.groups] "-100123" = "open"`.
    Table,
}

/// One key of a channel section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingKey {
    /// The key inside the section: `token`.
    pub name: &'static str,
    /// Secrets come only from the environment and are never printed.
    pub secret: bool,
    /// Value or table.
    pub kind: KeyKind,
}

impl SettingKey {
    /// An ordinary key.
    pub const fn value(name: &'static str) -> SettingKey {
        SettingKey { name, secret: false, kind: KeyKind::Value }
    }

    /// A secret: environment only.
    pub const fn secret(name: &'static str) -> SettingKey {
        SettingKey { name, secret: true, kind: KeyKind::Value }
    }

    /// A table keyed by ids.
    pub const fn table(name: &'static str) -> SettingKey {
        SettingKey { name, secret: false, kind: KeyKind::Table }
    }
}

/// The keys of the common block, present in every channel section.
pub const COMMON_KEYS: &[SettingKey] = &[
    SettingKey::value("dm_policy"),
    SettingKey::value("allowed_users"),
    SettingKey::value("admins"),
    SettingKey::value("group_policy"),
    SettingKey::value("allowed_groups"),
    SettingKey::table("groups"),
    SettingKey::value("edit_interval_ms"),
    SettingKey::value("busy"),
    SettingKey::value("max_waiting"),
    SettingKey::value("max_waiting_chars"),
    SettingKey::value("guest_messages_per_minute"),
];

/// Reads one channel section for its crate. Keys are relative to the section
/// (`token`, not `telegram.token`). A getter returns `None` when the key is not
/// set, and reports a value of the wrong type itself (returning `None`).
pub trait SettingsReader {
    /// A string.
    fn text(&mut self, key: &str) -> Option<String>;
    /// A boolean.
    fn flag(&mut self, key: &str) -> Option<bool>;
    /// A non-negative integer.
    fn number(&mut self, key: &str) -> Option<u64>;
    /// A list: an array in the file, comma-separated in the environment.
    fn list(&mut self, key: &str) -> Option<Vec<String>>;
    /// A table of strings keyed by id.
    fn table(&mut self, key: &str) -> Option<BTreeMap<String, String>>;
    /// Reports a problem with `key`; loading fails after every problem is listed.
    fn invalid(&mut self, key: &str, message: String);
}

/// What a platform's ids look like, to catch a typo'd allowlist at start.
#[derive(Debug, Clone, Copy)]
pub struct IdRule {
    /// Whether `id` could be a user or group id of the platform.
    pub valid: fn(&str) -> bool,
    /// How to describe a valid id in an error: "a Telegram id (a number)".
    pub described: &'static str,
}

/// Reads and checks the common block of a section.
pub fn read_common(reader: &mut dyn SettingsReader, ids: IdRule) -> CommonSettings {
    let d = AccessSettings::default();
    let dm_policy = read_choice(reader, "dm_policy", DmPolicy::NAMES, DmPolicy::parse).unwrap_or(d.dm_policy);
    let group_policy =
        read_choice(reader, "group_policy", GroupPolicy::NAMES, GroupPolicy::parse).unwrap_or(d.group_policy);
    let id_list = |reader: &mut dyn SettingsReader, key: &str| {
        let ids_read: Vec<String> =
            reader.list(key).unwrap_or_default().into_iter().map(|id| id.trim().to_string()).collect();
        if let Some(bad) = ids_read.iter().find(|id| !(ids.valid)(id)) {
            reader.invalid(key, format!("{bad:?} is not {}", ids.described));
        }
        ids_read
    };
    let allowed_users = id_list(reader, "allowed_users");
    let admins = id_list(reader, "admins");
    let allowed_groups = id_list(reader, "allowed_groups");
    let mut groups = BTreeMap::new();
    for (id, text) in reader.table("groups").unwrap_or_default() {
        match GroupPolicy::parse(&text) {
            Some(_) if !(ids.valid)(&id) => {
                reader.invalid(&format!("groups.{id}"), format!("{id:?} is not {}", ids.described))
            }
            Some(policy) => {
                groups.insert(id, policy);
            }
            None => reader.invalid(
                &format!("groups.{id}"),
                format!("must be one of {}, not {text:?}", GroupPolicy::NAMES.join(", ")),
            ),
        }
    }
    let edit_interval = match reader.number("edit_interval_ms") {
        Some(ms) if !(100..=60_000).contains(&ms) => {
            reader.invalid("edit_interval_ms", "must be between 100 and 60000".into());
            None
        }
        other => other.map(Duration::from_millis),
    };
    CommonSettings {
        access: AccessSettings { dm_policy, allowed_users, admins, group_policy, allowed_groups, groups },
        edit_interval,
        busy: read_busy(reader),
    }
}

fn read_busy(reader: &mut dyn SettingsReader) -> BusySettings {
    let d = BusySettings::default();
    let mut bounded = |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| match reader.number(key) {
        Some(n) if !range.contains(&n) => {
            reader.invalid(key, format!("must be between {} and {}", range.start(), range.end()));
            default
        }
        other => other.unwrap_or(default),
    };
    let max_waiting = bounded("max_waiting", 1..=1000, d.max_waiting as u64) as usize;
    let max_waiting_chars = bounded("max_waiting_chars", 100..=1_000_000, d.max_waiting_chars as u64) as usize;
    let guest_messages_per_minute =
        bounded("guest_messages_per_minute", 0..=600, u64::from(d.guest_messages_per_minute)) as u32;
    let mode = read_choice(reader, "busy", Busy::NAMES, Busy::parse).unwrap_or(d.mode);
    BusySettings { mode, max_waiting, max_waiting_chars, guest_messages_per_minute }
}

/// One of `names`, parsed; a problem naming the choices otherwise.
pub fn read_choice<T>(
    reader: &mut dyn SettingsReader,
    key: &str,
    names: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Option<T> {
    let text = reader.text(key)?;
    let parsed = parse(&text);
    if parsed.is_none() {
        reader.invalid(key, format!("must be one of {}, not {text:?}", names.join(", ")));
    }
    parsed
}

/// A channel section after reading: what the gateway needs and how to build the
/// adapter. Debug output never shows secrets.
pub trait ChannelSettings: Send + Sync + fmt::Debug {
    /// The access block and pacing.
    fn common(&self) -> &CommonSettings;
    /// Whether the section turns the channel on (its credentials are set).
    fn enabled(&self) -> bool;
    /// Builds the adapter; it registers `commands` with the platform when it starts.
    /// Makes no network request.
    fn build(&self, commands: &'static [CommandSpec]) -> Result<Arc<dyn Channel>, ChannelError>;
    /// Facts for `switchboard check`, secrets shown only as set or not set.
    fn describe(&self) -> Vec<(&'static str, String)>;
    /// The values of the section's secrets (tokens), so that they are masked
    /// wherever the daemon shows a tool call and never reach a tool.
    fn secrets(&self) -> Vec<String>;
}

/// What a channel crate registers with the daemon.
#[derive(Clone, Copy)]
pub struct ChannelDescriptor {
    /// The section and channel name: `telegram`.
    pub name: &'static str,
    /// The section's own keys (the common block's are added by the loader).
    pub keys: &'static [SettingKey],
    /// Reads the section (common block included) through the loader.
    pub read: fn(&mut dyn SettingsReader) -> Arc<dyn ChannelSettings>,
    /// How to turn the channel on, for the error when none is:
    /// "set SWITCHBOARD_TELEGRAM__TOKEN to a bot token from @BotFather".
    pub enable_hint: &'static str,
}

impl fmt::Debug for ChannelDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelDescriptor").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ChannelDescriptor {
    /// Every key of the section: its own and the common block's.
    pub fn all_keys(&self) -> impl Iterator<Item = &'static SettingKey> {
        self.keys.iter().chain(COMMON_KEYS.iter())
    }
}

/// A reader over plain text values (lists comma-separated, tables as `key.id`)
/// that records problems: for channel crates' tests of their sections.
#[derive(Debug, Default)]
pub struct MapReader {
    /// Keys relative to the section, with their values as the environment writes them.
    pub values: BTreeMap<String, String>,
    /// `(key, message)` for every problem reported.
    pub problems: Vec<(String, String)>,
}

impl MapReader {
    /// A reader holding these values.
    pub fn new(values: &[(&str, &str)]) -> MapReader {
        let values = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        MapReader { values, problems: Vec::new() }
    }

    /// The keys of the problems reported, in order.
    pub fn problem_keys(&self) -> Vec<&str> {
        self.problems.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn typed<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let text = self.values.get(key)?.clone();
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.invalid(key, format!("expected {what}, found {text:?}"));
        }
        parsed
    }
}

impl SettingsReader for MapReader {
    fn text(&mut self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }

    fn flag(&mut self, key: &str) -> Option<bool> {
        self.typed(key, "a boolean")
    }

    fn number(&mut self, key: &str) -> Option<u64> {
        self.typed(key, "a number")
    }

    fn list(&mut self, key: &str) -> Option<Vec<String>> {
        let text = self.values.get(key)?;
        Some(text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }

    fn table(&mut self, key: &str) -> Option<BTreeMap<String, String>> {
        let prefix = format!("{key}.");
        let found: BTreeMap<String, String> = self
            .values
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|id| (id.to_string(), v.clone())))
            .collect();
        (!found.is_empty()).then_some(found)
    }

    fn invalid(&mut self, key: &str, message: String) {
        self.problems.push((key.to_string(), message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_this_machine_is_loopback() {
        for ok in ["http://127.0.0.1:9/api/", "http://localhost:80", "http://[::1]:5/x", "http://127.5.0.1"] {
            assert!(is_loopback_http(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1/",
            "http://10.0.0.1/",
            "http://slack.com/api/",
            "http://127.0.0.1.evil.com/",
            "http://localhost.evil/",
        ] {
            assert!(!is_loopback_http(bad), "{bad}");
        }
    }

    const NUMERIC: IdRule = IdRule { valid: |id| id.parse::<i64>().is_ok(), described: "a number" };

    #[test]
    fn defaults_when_nothing_is_set() {
        let mut reader = MapReader::default();
        assert_eq!(read_common(&mut reader, NUMERIC), CommonSettings::default());
        assert!(reader.problems.is_empty());
    }

    #[test]
    fn values_are_read_and_every_problem_named() {
        let mut reader = MapReader::new(&[
            ("dm_policy", "open"),
            ("admins", "7, 8"),
            ("allowed_users", "42,abc"),
            ("group_policy", "loud"),
            ("groups.-100", "listen"),
            ("groups.-200", "shout"),
            ("groups.team", "open"),
            ("edit_interval_ms", "50"),
        ]);
        let common = read_common(&mut reader, NUMERIC);
        assert_eq!(common.access.dm_policy, DmPolicy::Open);
        assert_eq!(common.access.admins, ["7", "8"]);
        assert_eq!(common.access.groups.get("-100"), Some(&GroupPolicy::Listen));
        assert_eq!(
            reader.problem_keys(),
            ["group_policy", "allowed_users", "groups.-200", "groups.team", "edit_interval_ms"]
        );
        assert!(reader.problems[1].1.contains("\"abc\" is not a number"));
    }

    #[test]
    fn busy_settings_are_read_and_checked() {
        let mut reader =
            MapReader::new(&[("busy", "interrupt"), ("max_waiting", "5"), ("guest_messages_per_minute", "0")]);
        let busy = read_common(&mut reader, NUMERIC).busy;
        assert_eq!(
            busy,
            BusySettings {
                mode: Busy::Interrupt,
                max_waiting: 5,
                max_waiting_chars: 20_000,
                guest_messages_per_minute: 0
            }
        );
        assert!(reader.problems.is_empty());
        let mut reader = MapReader::new(&[("busy", "later"), ("max_waiting", "0"), ("max_waiting_chars", "10")]);
        assert_eq!(read_common(&mut reader, NUMERIC).busy, BusySettings::default());
        assert_eq!(reader.problem_keys(), ["max_waiting", "max_waiting_chars", "busy"]);
    }
}
