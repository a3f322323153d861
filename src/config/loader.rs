//! Reads the layers with the `config` crate, key by key, so that every bad value is
//! reported (not just the first), then validates the typed result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use config::{Config, ConfigError as RawError, Environment, File, FileFormat};
use serde::de::DeserializeOwned;
use switchboard_channel_core::settings::KeyKind;
use switchboard_channel_core::{ChannelDescriptor, SettingsReader};

use super::{
    env_var_for, AgentSettings, ChannelSection, ConfigError, ConfigSource, EngineSettings, GatewaySettings,
    LlmSettings, Loaded, LogFormat, LogSettings, PermissionMode, PolicyOverride, PolicySettings, PostgresSettings,
    Problem, ReplicaSettings, ServerSettings, Settings, StoreKind, StoreSettings, TierLimits, ToolSettings,
    SECRET_KEYS,
};
use crate::policy::{MemoryWrites, TierLimit};
use std::time::Duration;

/// Every key the configuration understands.
const KNOWN_KEYS: &[&str] = &[
    "data_dir",
    "llm.base_url",
    "llm.api_key",
    "llm.model",
    "llm.context_window",
    "llm.request_timeout_secs",
    "llm.max_retries",
    "llm.stream",
    "agent.name",
    "agent.persona",
    "agent.human",
    "agent.system_prompt",
    "agent.system_prompt_append",
    "agent.permission_mode",
    "agent.allowed_tools",
    "agent.disallowed_tools",
    "agent.workdir",
    "agent.max_steps",
    "agent.compaction_threshold",
    "tools.webfetch_allow_private_network",
    "policy.approval_timeout_secs",
    "policy.approvers",
    "policy.ask_user_question_message",
    "policy.users_approve_own",
    "policy.grant_expiry_hours",
    "policy.guest_limit",
    "policy.user_limit",
    "policy.admin_limit",
    "policy.user_memory_in_dm",
    "policy.user_memory_in_groups",
    "tools.conversation_search",
    "gateway.routing",
    "gateway.stop_grace_secs",
    "gateway.max_concurrent_turns",
    "store.kind",
    "store.postgres.url",
    "store.postgres.pool_size",
    "store.postgres.replicas",
    "store.postgres.lease_ttl_ms",
    "store.postgres.lease_renew_ms",
    "store.postgres.poll_ms",
    "store.cache_mb",
    "store.approval_retention_days",
    "engine.idle_secs",
    "server.listen",
    "log.format",
];

/// Keys of earlier versions that moved, with where they went.
const MOVED_KEYS: &[(&str, &str)] = &[(
    "gateway.edit_interval_ms",
    "moved into each channel's section: set edit_interval_ms under [telegram] (or another channel)",
)];

/// What to say about a key that is not a setting.
fn unknown(key: &str) -> String {
    match MOVED_KEYS.iter().find(|(k, _)| *k == key) {
        Some((_, hint)) => format!("no longer a setting here; {hint}"),
        None => "unknown key".into(),
    }
}

/// Fields of a `[policy.channels.NAME]` or `[policy.chats."ID"]` table.
const OVERRIDE_FIELDS: &[&str] =
    &["permission_mode", "allowed_tools", "disallowed_tools", "guest_limit", "user_limit", "admin_limit"];

/// Whether `key` is a setting outside the channel sections.
fn is_known_core(key: &str) -> bool {
    if KNOWN_KEYS.contains(&key) {
        return true;
    }
    // Tables keyed by chat id: `[gateway.routes] "telegram:1" = "team"`.
    if key.strip_prefix("gateway.routes.").is_some_and(|id| !id.is_empty()) {
        return true;
    }
    let dynamic = ["policy.channels.", "policy.chats."].iter().find_map(|p| key.strip_prefix(p));
    dynamic
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(id, field)| !id.is_empty() && OVERRIDE_FIELDS.contains(&field))
}

/// Whether `key` is one of a registered channel's, and whether it is a secret.
fn channel_key(registry: &[ChannelDescriptor], key: &str) -> Option<bool> {
    let (section, rest) = key.split_once('.')?;
    let channel = registry.iter().find(|c| c.name == section)?;
    channel.all_keys().find_map(|k| match k.kind {
        KeyKind::Value if rest == k.name => Some(k.secret),
        KeyKind::Table
            if rest.strip_prefix(k.name).and_then(|r| r.strip_prefix('.')).is_some_and(|id| !id.is_empty()) =>
        {
            Some(k.secret)
        }
        _ => None,
    })
}

/// An override table as written.
#[derive(serde::Deserialize)]
struct RawOverride {
    permission_mode: Option<String>,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    disallowed_tools: Vec<String>,
    guest_limit: Option<String>,
    user_limit: Option<String>,
    admin_limit: Option<String>,
}

/// Variables with the prefix that are not settings.
const NON_SETTING_VARS: &[&str] = &["SWITCHBOARD_CONFIG", "SWITCHBOARD_BIN"];

/// Load and validate the configuration described by `source`, with the channels
/// this build registers.
pub fn load(source: &ConfigSource) -> Result<Loaded, ConfigError> {
    load_with(source, crate::channels::REGISTERED)
}

/// Load and validate with these channel sections (tests add fakes).
pub fn load_with(source: &ConfigSource, registry: &[ChannelDescriptor]) -> Result<Loaded, ConfigError> {
    let mut reader = Reader::new(source, registry);
    let mut settings = reader.read_all();
    if !reader.problems.is_empty() {
        return Err(ConfigError { problems: reader.problems });
    }
    settings.config_file =
        reader.file_path.as_deref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    Ok(Loaded { settings, file: reader.file_path })
}

struct Reader<'a> {
    source: &'a ConfigSource,
    registry: &'a [ChannelDescriptor],
    file_path: Option<PathBuf>,
    file_table: Option<toml::Table>,
    config: Option<Config>,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn new(source: &'a ConfigSource, registry: &'a [ChannelDescriptor]) -> Self {
        let mut reader =
            Reader { source, registry, file_path: None, file_table: None, config: None, problems: Vec::new() };
        reader.read_file();
        reader.check_env_names();
        reader.build();
        reader
    }

    /// Parse the file ourselves first: it gives clear TOML errors and lets us find
    /// unknown keys and secrets that the typed layer would never look at.
    fn read_file(&mut self) {
        let Some(path) = &self.source.file else {
            return;
        };
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.source.file_required => return,
            Err(e) => {
                self.problem("", &format!("file {shown}"), format!("cannot read the config file: {e}"));
                return;
            }
        };
        match text.parse::<toml::Table>() {
            Ok(table) => {
                let mut keys = Vec::new();
                flatten_keys("", &table, &mut keys, &|k| self.is_known(k));
                for key in keys {
                    if !self.is_known(&key) {
                        self.problem(&key, &format!("file {shown}"), unknown(&key));
                    } else if self.is_secret(&key) {
                        let var = env_var_for(&key);
                        self.problem(
                            &key,
                            &format!("file {shown}"),
                            format!(
                                "is a secret and may only be set in the environment ({var}); remove it from the file"
                            ),
                        );
                    }
                }
                self.file_path = Some(path.clone());
                self.file_table = Some(table);
            }
            Err(e) => {
                let place = e.span().map(|span| line_and_column(&text, span.start)).unwrap_or_default();
                self.problem(
                    "",
                    &format!("file {shown}"),
                    format!("not valid TOML{place}: {}", e.message().trim().replace('\n', "; ")),
                );
            }
        }
    }

    fn is_known(&self, key: &str) -> bool {
        is_known_core(key) || channel_key(self.registry, key).is_some()
    }

    fn is_secret(&self, key: &str) -> bool {
        SECRET_KEYS.contains(&key) || channel_key(self.registry, key) == Some(true)
    }

    fn check_env_names(&mut self) {
        let mut names: Vec<&String> = self.source.env.keys().collect();
        names.sort();
        for name in names {
            if NON_SETTING_VARS.contains(&name.as_str()) {
                continue;
            }
            let key = name["SWITCHBOARD_".len()..].to_ascii_lowercase().replace("__", ".");
            if !self.is_known(&key) {
                let message = match MOVED_KEYS.iter().any(|(k, _)| *k == key) {
                    true => unknown(&key),
                    false => "not a setting switchboard knows".into(),
                };
                self.problems.push(Problem { key, origin: format!("environment variable {name}"), message });
            }
        }
    }

    fn build(&mut self) {
        // No `try_parsing`: it would turn values such as an API key "0123" into numbers.
        let env = Environment::with_prefix("SWITCHBOARD")
            .prefix_separator("_")
            .separator("__")
            .source(Some(self.source.env.clone().into_iter().collect()));
        let mut builder = Config::builder();
        if let Some(path) = &self.file_path {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        match builder.add_source(env).build() {
            Ok(c) => self.config = Some(c),
            Err(e) => self.problem("", "loading", e.to_string()),
        }
    }

    fn read_all(&mut self) -> Settings {
        let d = Settings::default();
        let permission_text: String = self.get("agent.permission_mode", "standard".to_string());
        let permission_mode = match PermissionMode::parse(&permission_text) {
            Some(m) => m,
            None => {
                self.invalid(
                    "agent.permission_mode",
                    format!("must be one of {}, not {permission_text:?}", PermissionMode::NAMES.join(", ")),
                );
                d.agent.permission_mode
            }
        };
        let mut settings = Settings {
            data_dir: self.get("data_dir", d.data_dir),
            config_file: None,
            llm: LlmSettings {
                base_url: self.get("llm.base_url", d.llm.base_url),
                api_key: self.get("llm.api_key", d.llm.api_key),
                model: self.get("llm.model", d.llm.model),
                context_window: self.get("llm.context_window", d.llm.context_window),
                request_timeout_secs: self.get("llm.request_timeout_secs", d.llm.request_timeout_secs),
                max_retries: self.get("llm.max_retries", d.llm.max_retries),
                stream: self.get("llm.stream", d.llm.stream),
            },
            agent: AgentSettings {
                name: self.get("agent.name", d.agent.name),
                persona: self.get("agent.persona", d.agent.persona),
                human: self.get("agent.human", d.agent.human),
                system_prompt: self.get("agent.system_prompt", d.agent.system_prompt),
                system_prompt_append: self.get("agent.system_prompt_append", d.agent.system_prompt_append),
                permission_mode,
                allowed_tools: self.get_list("agent.allowed_tools", d.agent.allowed_tools),
                disallowed_tools: self.get_list("agent.disallowed_tools", d.agent.disallowed_tools),
                workdir: self.get("agent.workdir", d.agent.workdir),
                max_steps: self.get("agent.max_steps", d.agent.max_steps),
                compaction_threshold: self.get("agent.compaction_threshold", d.agent.compaction_threshold),
            },
            policy: self.read_policy(),
            gateway: self.read_gateway(),
            store: self.read_store(&d.store),
            engine: EngineSettings { idle_secs: self.get("engine.idle_secs", d.engine.idle_secs) },
            server: self.read_server(),
            log: self.read_log(),
            channels: self.read_channels(),
            tools: self.read_tools(),
        };
        let kind_named = self.config.as_ref().is_some_and(|c| c.get::<config::Value>("store.kind").is_ok());
        if !kind_named {
            settings.store.kind = StoreKind::embedded_in(&settings.data_dir);
        }
        self.validate(&settings);
        settings
    }

    /// Every registered channel's section, read by its crate.
    fn read_channels(&mut self) -> Vec<ChannelSection> {
        let registry = self.registry;
        registry
            .iter()
            .map(|channel| {
                let mut section = SectionReader { reader: self, section: channel.name };
                ChannelSection { name: channel.name, settings: (channel.read)(&mut section) }
            })
            .collect()
    }

    fn read_gateway(&mut self) -> GatewaySettings {
        let d = Settings::default().gateway;
        let routing: String = self.get("gateway.routing", "per-chat".to_string());
        let shared_conversation = match routing.as_str() {
            "per-chat" => false,
            "shared" => true,
            other => {
                self.invalid("gateway.routing", format!("must be per-chat or shared, not {other:?}"));
                false
            }
        };
        let stop_grace_secs = self.get("gateway.stop_grace_secs", d.stop_grace_secs);
        if stop_grace_secs > 600 {
            self.invalid("gateway.stop_grace_secs", "must be between 0 and 600 seconds".into());
        }
        let max_concurrent_turns = self.get("gateway.max_concurrent_turns", d.max_concurrent_turns);
        if !(1..=10_000).contains(&max_concurrent_turns) {
            self.invalid("gateway.max_concurrent_turns", "must be between 1 and 10000".into());
        }
        GatewaySettings {
            shared_conversation,
            routes: self.get("gateway.routes", d.routes),
            stop_grace_secs,
            max_concurrent_turns,
        }
    }

    fn read_policy(&mut self) -> PolicySettings {
        let d = Settings::default().policy;
        let limit = |reader: &mut Self, key: &str, default| match reader.get_opt::<String>(key) {
            None => default,
            Some(text) => reader.limit(key, &text).unwrap_or(default),
        };
        let limits = TierLimits {
            guest: limit(self, "policy.guest_limit", d.limits.guest),
            user: limit(self, "policy.user_limit", d.limits.user),
            admin: limit(self, "policy.admin_limit", d.limits.admin),
        };
        let memory = |reader: &mut Self, key: &str, default| match reader.get_opt::<String>(key) {
            None => default,
            Some(text) => MemoryWrites::parse(&text).unwrap_or_else(|| {
                reader.invalid(key, format!("must be one of {}, not {text:?}", MemoryWrites::NAMES.join(", ")));
                default
            }),
        };
        let user_memory_in_dm = memory(self, "policy.user_memory_in_dm", d.user_memory_in_dm);
        let user_memory_in_groups = memory(self, "policy.user_memory_in_groups", d.user_memory_in_groups);
        PolicySettings {
            user_memory_in_dm,
            user_memory_in_groups,
            approval_timeout_secs: self.get("policy.approval_timeout_secs", d.approval_timeout_secs),
            approvers: self.get_list("policy.approvers", d.approvers),
            users_approve_own: self.get("policy.users_approve_own", d.users_approve_own),
            grant_expiry_hours: self.get("policy.grant_expiry_hours", d.grant_expiry_hours),
            limits,
            ask_user_question_message: self.get("policy.ask_user_question_message", d.ask_user_question_message),
            channels: self.read_overrides("policy.channels"),
            chats: self.read_overrides("policy.chats"),
        }
    }

    fn read_tools(&mut self) -> ToolSettings {
        let d = Settings::default().tools;
        let scope: String = self.get("tools.conversation_search", "conversation".to_string());
        let conversation_search_all = match scope.as_str() {
            "conversation" => false,
            "agent" => true,
            other => {
                self.invalid("tools.conversation_search", format!("must be conversation or agent, not {other:?}"));
                d.conversation_search_all
            }
        };
        ToolSettings {
            webfetch_allow_private_network: self
                .get("tools.webfetch_allow_private_network", d.webfetch_allow_private_network),
            conversation_search_all,
        }
    }

    /// A tier limit's spelling, parsed; a problem naming the choices otherwise.
    fn limit(&mut self, key: &str, text: &str) -> Option<TierLimit> {
        let parsed = TierLimit::parse(text);
        if parsed.is_none() {
            self.invalid(key, format!("must be one of {}, not {text:?}", TierLimit::NAMES.join(", ")));
        }
        parsed
    }

    fn read_overrides(&mut self, key: &str) -> BTreeMap<String, PolicyOverride> {
        let raw: BTreeMap<String, RawOverride> = self.get(key, BTreeMap::new());
        let mut out = BTreeMap::new();
        for (id, o) in raw {
            let permission_mode = match o.permission_mode.as_deref().map(|m| (m, PermissionMode::parse(m))) {
                None => None,
                Some((_, Some(mode))) => Some(mode),
                Some((text, None)) => {
                    let field = format!("{key}.{id}.permission_mode");
                    let message = format!("must be one of {}, not {text:?}", PermissionMode::NAMES.join(", "));
                    self.invalid(&field, message);
                    None
                }
            };
            let mut limit =
                |field: &str, text: Option<String>| text.and_then(|t| self.limit(&format!("{key}.{id}.{field}"), &t));
            let parsed = PolicyOverride {
                permission_mode,
                allowed_tools: o.allowed_tools,
                disallowed_tools: o.disallowed_tools,
                guest_limit: limit("guest_limit", o.guest_limit),
                user_limit: limit("user_limit", o.user_limit),
                admin_limit: limit("admin_limit", o.admin_limit),
            };
            out.insert(id, parsed);
        }
        out
    }

    fn read_server(&mut self) -> ServerSettings {
        let listen = self.get_opt::<String>("server.listen").filter(|l| !l.trim().is_empty());
        let listen = listen.and_then(|text| match text.trim().parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.invalid("server.listen", format!("{text:?} is not an address and port like 127.0.0.1:9464"));
                None
            }
        });
        ServerSettings { listen }
    }

    fn read_store(&mut self, d: &StoreSettings) -> StoreSettings {
        let kind = self.get_opt::<String>("store.kind").and_then(|text| {
            StoreKind::parse(text.trim()).or_else(|| {
                self.invalid("store.kind", format!("{text:?} is not one of: sqlite, sled, postgres"));
                None
            })
        });
        StoreSettings {
            kind: kind.unwrap_or(d.kind),
            postgres: PostgresSettings {
                url: self.get("store.postgres.url", d.postgres.url.clone()),
                pool_size: self.get("store.postgres.pool_size", d.postgres.pool_size),
                replicas: self.read_replicas(&d.postgres.replicas),
            },
            cache_mb: self.get("store.cache_mb", d.cache_mb),
            approval_retention_days: self.get("store.approval_retention_days", d.approval_retention_days),
        }
    }

    fn read_replicas(&mut self, d: &ReplicaSettings) -> ReplicaSettings {
        let ms = |d: Duration| d.as_millis() as u64;
        ReplicaSettings {
            enabled: self.get("store.postgres.replicas", d.enabled),
            lease_ttl: Duration::from_millis(self.get("store.postgres.lease_ttl_ms", ms(d.lease_ttl))),
            renew_every: Duration::from_millis(self.get("store.postgres.lease_renew_ms", ms(d.renew_every))),
            poll_every: Duration::from_millis(self.get("store.postgres.poll_ms", ms(d.poll_every))),
        }
    }

    fn read_log(&mut self) -> LogSettings {
        let format = self.get_opt::<String>("log.format").and_then(|text| {
            LogFormat::parse(text.trim()).or_else(|| {
                self.invalid("log.format", format!("{text:?} is not one of: text, json"));
                None
            })
        });
        LogSettings { format: format.unwrap_or_default() }
    }

    /// One typed value; a missing key gives the default, a bad one a problem.
    fn get<T: DeserializeOwned>(&mut self, key: &str, default: T) -> T {
        self.get_opt(key).unwrap_or(default)
    }

    /// One typed value, `None` when the key is not set; a bad one is a problem.
    fn get_opt<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let config = self.config.as_ref()?;
        match config.get::<T>(key) {
            Ok(v) => Some(v),
            Err(RawError::NotFound(_)) => None,
            Err(e) => {
                let message = describe(&e, self.is_secret(key));
                self.invalid(key, message);
                None
            }
        }
    }

    /// A list: an array in the file, or comma-separated text in the environment.
    fn get_list(&mut self, key: &str, default: Vec<String>) -> Vec<String> {
        self.get_list_opt(key).unwrap_or(default)
    }

    fn get_list_opt(&mut self, key: &str) -> Option<Vec<String>> {
        if let Some(text) = self.source.env.get(&env_var_for(key)) {
            return Some(text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
        }
        self.get_opt(key)
    }

    fn validate_replicas(&mut self, s: &Settings) {
        let r = &s.store.postgres.replicas;
        if r.enabled && s.store.kind != StoreKind::Postgres {
            self.invalid(
                "store.postgres.replicas",
                "needs store.kind = \"postgres\" (sqlite and sled are one process's)".into(),
            );
        }
        let ms = |d: Duration| d.as_millis() as u64;
        if !(1_000..=600_000).contains(&ms(r.lease_ttl)) {
            self.invalid("store.postgres.lease_ttl_ms", "must be between 1000 and 600000 (ms)".into());
        }
        if r.renew_every.is_zero() || r.renew_every * 3 > r.lease_ttl {
            self.invalid("store.postgres.lease_renew_ms", "must be above 0 and at most a third of lease_ttl_ms".into());
        }
        if !(50..=60_000).contains(&ms(r.poll_every)) {
            self.invalid("store.postgres.poll_ms", "must be between 50 and 60000 (ms)".into());
        }
    }

    fn validate(&mut self, s: &Settings) {
        if s.data_dir.as_os_str().is_empty() {
            self.invalid("data_dir", "must not be empty".into());
        }
        match reqwest::Url::parse(&s.llm.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => self.invalid("llm.base_url", format!("must be an http or https URL, not {}:", u.scheme())),
            Err(e) => self.invalid("llm.base_url", format!("is not a URL ({e})")),
        }
        if s.llm.model.trim().is_empty() {
            self.invalid("llm.model", "must name the model to use".into());
        }
        if s.llm.context_window < 256 {
            self.invalid("llm.context_window", "must be at least 256 tokens".into());
        }
        if !(1..=3600).contains(&s.llm.request_timeout_secs) {
            self.invalid("llm.request_timeout_secs", "must be between 1 and 3600".into());
        }
        if s.llm.max_retries > 10 {
            self.invalid("llm.max_retries", "must be at most 10".into());
        }
        if s.agent.name.trim().is_empty() {
            self.invalid("agent.name", "must not be empty".into());
        }
        // The agent's tools work in the workdir: the daemon's own files must not be in it.
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let workdir = absolute(&s.agent.workdir);
        let data_dir = absolute(&s.data_dir);
        if data_dir.starts_with(&workdir) || workdir.starts_with(&data_dir) {
            self.invalid(
                "agent.workdir",
                "must not contain data_dir, nor lie inside it: the agent's tools would reach the store".into(),
            );
        }
        if let Some(file) = self.file_path.as_deref().map(absolute).filter(|f| f.starts_with(&workdir)) {
            self.invalid("agent.workdir", format!("must not contain the configuration file {}", file.display()));
        }
        if s.agent.system_prompt.trim().is_empty() {
            self.invalid("agent.system_prompt", "must be a preset name (default, minimal) or prompt text".into());
        }
        if !(1..=1000).contains(&s.agent.max_steps) {
            self.invalid("agent.max_steps", "must be between 1 and 1000".into());
        }
        let t = s.agent.compaction_threshold;
        if !(t > 0.05 && t <= 1.0) {
            self.invalid("agent.compaction_threshold", "must be a fraction above 0.05 and at most 1.0".into());
        }
        if !(1..=24 * 365).contains(&s.policy.grant_expiry_hours) {
            self.invalid("policy.grant_expiry_hours", "must be between 1 hour and a year (8760)".into());
        }
        if !(8..=65_536).contains(&s.store.cache_mb) {
            self.invalid("store.cache_mb", "must be between 8 and 65536 (MiB)".into());
        }
        if !(1..=86_400).contains(&s.engine.idle_secs) {
            self.invalid("engine.idle_secs", "must be between 1 and 86400 seconds".into());
        }
        if s.store.kind == StoreKind::Postgres && s.store.postgres.url.trim().is_empty() {
            self.invalid("store.postgres.url", "is required when store.kind is \"postgres\"".into());
        }
        if !(1..=256).contains(&s.store.postgres.pool_size) {
            self.invalid("store.postgres.pool_size", "must be between 1 and 256".into());
        }
        self.validate_replicas(s);
        if !(1..=36_500).contains(&s.store.approval_retention_days) {
            self.invalid("store.approval_retention_days", "must be between 1 and 36500 days".into());
        }
        if !(5..=7 * 24 * 3600).contains(&s.policy.approval_timeout_secs) {
            self.invalid("policy.approval_timeout_secs", "must be between 5 seconds and 7 days".into());
        }
        if s.policy.approvers.iter().any(|a| a.trim().is_empty()) {
            self.invalid("policy.approvers", "must not contain empty ids".into());
        }
        self.check_rules("agent.allowed_tools", &s.agent.allowed_tools);
        self.check_rules("agent.disallowed_tools", &s.agent.disallowed_tools);
        for (table, overrides) in [("policy.channels", &s.policy.channels), ("policy.chats", &s.policy.chats)] {
            for (id, o) in overrides {
                self.check_rules(&format!("{table}.{id}.allowed_tools"), &o.allowed_tools);
                self.check_rules(&format!("{table}.{id}.disallowed_tools"), &o.disallowed_tools);
            }
        }
    }

    /// Every rule must parse and name a tool that exists: a typo would otherwise
    /// silently allow or deny nothing.
    fn check_rules(&mut self, key: &str, rules: &[String]) {
        let tools = crate::agent::embedded::tools::names();
        for text in rules {
            match crate::policy::rules::Rule::parse(text) {
                None => self.invalid(key, format!("{text:?} is not a rule (write Tool or Tool(pattern))")),
                Some(rule) if !tools.contains(&rule.tool) => {
                    self.invalid(key, format!("{text:?} names no known tool (the tools are {})", tools.join(", ")))
                }
                Some(_) => {}
            }
        }
    }

    fn invalid(&mut self, key: &str, message: String) {
        let origin = self.origin_of(key);
        self.problem(key, &origin, message);
    }

    fn problem(&mut self, key: &str, origin: &str, message: String) {
        self.problems.push(Problem { key: key.into(), origin: origin.into(), message });
    }

    /// Where the value of `key` came from, environment first as it wins.
    fn origin_of(&self, key: &str) -> String {
        let var = env_var_for(key);
        if self.source.env.contains_key(&var) {
            return format!("environment variable {var}");
        }
        if let (Some(table), Some(path)) = (&self.file_table, &self.file_path) {
            if lookup(table, key) {
                return format!("file {}", path.display());
            }
        }
        "default".into()
    }
}

/// A type error without the crate's own key/origin suffix (we add ours), and without
/// the value itself when the key is a secret.
fn describe(e: &RawError, secret: bool) -> String {
    match e {
        RawError::Type { unexpected, expected, .. } if !secret => {
            format!("expected {expected}, found {unexpected}")
        }
        RawError::Type { expected, .. } => format!("expected {expected}"),
        other => other.to_string(),
    }
}

/// " at line L, column C" for a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" at line {line}, column {column}")
}

fn flatten_keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>, is_known: &dyn Fn(&str) -> bool) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) if !is_known(&key) => flatten_keys(&key, inner, out, is_known),
            _ => out.push(key),
        }
    }
}

/// One channel section seen through the loader: keys are relative to it, and
/// every problem lands in the loader's list with its origin.
struct SectionReader<'r, 'a> {
    reader: &'r mut Reader<'a>,
    section: &'static str,
}

impl SectionReader<'_, '_> {
    fn full(&self, key: &str) -> String {
        format!("{}.{key}", self.section)
    }
}

impl SettingsReader for SectionReader<'_, '_> {
    fn text(&mut self, key: &str) -> Option<String> {
        let key = self.full(key);
        self.reader.get_opt(&key)
    }

    fn flag(&mut self, key: &str) -> Option<bool> {
        let key = self.full(key);
        self.reader.get_opt(&key)
    }

    fn number(&mut self, key: &str) -> Option<u64> {
        let key = self.full(key);
        self.reader.get_opt(&key)
    }

    fn list(&mut self, key: &str) -> Option<Vec<String>> {
        let key = self.full(key);
        self.reader.get_list_opt(&key)
    }

    fn table(&mut self, key: &str) -> Option<BTreeMap<String, String>> {
        let key = self.full(key);
        self.reader.get_opt(&key)
    }

    fn invalid(&mut self, key: &str, message: String) {
        let key = self.full(key);
        self.reader.invalid(&key, message);
    }
}

fn lookup(table: &toml::Table, key: &str) -> bool {
    let mut current = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        match current.get(part) {
            Some(toml::Value::Table(t)) if parts.peek().is_some() => current = t,
            Some(_) => return parts.peek().is_none(),
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn source(file: Option<&str>, env: &[(&str, &str)]) -> (ConfigSource, Option<tempfile::NamedTempFile>) {
        let tmp = file.map(|text| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(text.as_bytes()).unwrap();
            f
        });
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let src = ConfigSource { file: tmp.as_ref().map(|f| f.path().to_path_buf()), file_required: true, env };
        (src, tmp)
    }

    /// Settings compared through their debug form (secrets hidden), channels apart.
    fn core(settings: &Settings) -> String {
        format!("{:?}", Settings { channels: Vec::new(), ..settings.clone() })
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let (src, _f) = source(None, &[]);
        let loaded = load(&src).unwrap();
        assert_eq!(core(&loaded.settings), core(&Settings::default()));
        let names: Vec<&str> = loaded.settings.channels.iter().map(|c| c.name).collect();
        assert_eq!(names, ["telegram", "discord", "slack"], "every registered channel has a section");
        assert_eq!(loaded.settings.enabled_channels().count(), 0, "none is on without its token");
        assert_eq!(loaded.settings.llm.context_window, 128_000);
        assert_eq!(loaded.settings.agent.max_steps, 25);
        assert_eq!(loaded.settings.gateway.max_concurrent_turns, 64);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let (src, _f) = source(
            Some("data_dir = \"/tmp/x\"\n[llm]\nmodel = \"from-file\"\nmax_retries = 5\n[agent]\nallowed_tools = [\"Read\"]\n"),
            &[
                ("SWITCHBOARD_LLM__MODEL", "from-env"),
                ("SWITCHBOARD_LLM__API_KEY", "12345"),
                ("SWITCHBOARD_AGENT__DISALLOWED_TOOLS", "Bash,WebFetch"),
                ("SWITCHBOARD_AGENT__COMPACTION_THRESHOLD", "0.5"),
            ],
        );
        let s = load(&src).unwrap().settings;
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.llm.model, "from-env");
        assert_eq!(s.llm.max_retries, 5);
        assert_eq!(s.llm.api_key.as_deref(), Some("12345"));
        assert_eq!(s.agent.allowed_tools, vec!["Read".to_string()]);
        assert_eq!(s.agent.disallowed_tools, vec!["Bash".to_string(), "WebFetch".to_string()]);
        assert_eq!(s.agent.compaction_threshold, 0.5);
    }

    #[test]
    fn every_problem_is_listed_with_its_origin() {
        let (src, f) = source(
            Some("[llm]\napi_key = \"sk-secret\"\ncontext_window = \"big\"\nmodle = \"x\"\n[agent]\npermission_mode = \"yolo\"\n"),
            &[
                ("SWITCHBOARD_AGENT__MAX_STEPS", "0"),
                ("SWITCHBOARD_LLM__BASEURL", "http://x"),
                ("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_TURNS", "0"),
            ],
        );
        let err = load(&src).unwrap_err();
        let text = err.to_string();
        let file = f.unwrap().path().display().to_string();
        let find = |key: &str| {
            err.problems.iter().find(|p| p.key == key).unwrap_or_else(|| panic!("no problem for {key}: {text}"))
        };
        assert_eq!(find("llm.api_key").origin, format!("file {file}"));
        assert!(find("llm.api_key").message.contains("SWITCHBOARD_LLM__API_KEY"));
        assert!(find("llm.context_window").message.contains("big"), "{text}");
        assert_eq!(find("llm.modle").message, "unknown key");
        assert!(find("agent.permission_mode").message.contains("acceptEdits"));
        assert_eq!(find("agent.max_steps").origin, "environment variable SWITCHBOARD_AGENT__MAX_STEPS");
        assert_eq!(find("llm.baseurl").origin, "environment variable SWITCHBOARD_LLM__BASEURL");
        assert!(find("gateway.max_concurrent_turns").message.contains("between 1 and 10000"), "{text}");
        assert!(!text.contains("sk-secret"), "secret leaked: {text}");
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn corrupt_file_and_missing_explicit_file_are_clear_errors() {
        let (src, _f) = source(Some("[llm\nmodel = 1"), &[]);
        let err = load(&src).unwrap_err();
        assert!(err.to_string().contains("not valid TOML at line 1, column 5"), "{err}");

        let src = ConfigSource {
            file: Some("/nonexistent/switchboard.toml".into()),
            file_required: true,
            env: HashMap::new(),
        };
        let err = load(&src).unwrap_err();
        assert!(err.to_string().contains("cannot read the config file"), "{err}");
    }

    #[test]
    fn policy_overrides_per_channel_and_chat_are_read_and_checked() {
        let (src, _f) = source(
            Some("[policy]\napprovers = [\"telegram:1\"]\napproval_timeout_secs = 60\n[policy.channels.telegram]\npermission_mode = \"memory\"\n[policy.chats.\"telegram:123\"]\npermission_mode = \"acceptEdits\"\nallowed_tools = [\"Bash(git status*)\"]\n"),
            &[],
        );
        let p = load(&src).unwrap().settings.policy;
        assert_eq!(p.approvers, ["telegram:1"]);
        assert_eq!(p.approval_timeout_secs, 60);
        assert_eq!(p.channels["telegram"].permission_mode, Some(PermissionMode::Memory));
        assert_eq!(p.chats["telegram:123"].permission_mode, Some(PermissionMode::AcceptEdits));
        assert_eq!(p.chats["telegram:123"].allowed_tools, ["Bash(git status*)"]);

        let (src, _f) = source(Some("[policy.chats.\"x:1\"]\npermission_mode = \"yolo\"\nmode = 1\n"), &[]);
        let err = load(&src).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"policy.chats.x:1.mode"), "{err}");
    }

    #[test]
    fn the_example_file_is_valid_documents_every_key_and_shows_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.example.toml");
        let src = ConfigSource { file: Some(path.clone()), file_required: true, env: HashMap::new() };
        let mut loaded = load(&src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.settings.config_file.as_deref(), Some(path.as_path()));
        loaded.settings.config_file = None;
        let (none, _f) = source(None, &[]);
        let defaults = load(&none).unwrap();
        assert_eq!(
            format!("{:?}", loaded.settings),
            format!("{:?}", defaults.settings),
            "the example shows the defaults"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let channel_keys: Vec<String> = crate::channels::REGISTERED
            .iter()
            .flat_map(|c| c.all_keys().map(move |k| format!("{}.{}", c.name, k.name)))
            .collect();
        for key in KNOWN_KEYS.iter().copied().chain(channel_keys.iter().map(String::as_str)) {
            let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
            let documented = text.contains(&format!("\n{name} = ")) || text.contains(&format!("# {name}:"));
            let in_section = section.is_empty() || text.contains(&format!("[{section}]"));
            assert!(documented && in_section, "{key} is not documented in the example file");
        }
    }

    #[test]
    fn channel_sections_are_read_by_their_crates_with_every_problem_and_its_origin() {
        let (src, f) = source(
            Some("[telegram]\ntoken = \"1:in-the-file\"\ndm_policy = \"friends\"\nadmins = [\"7\", \"x\"]\nmode = \"webhook\"\ncolour = \"blue\"\n[telegram.groups]\n\"-100\" = \"open\"\n\"-200\" = \"loud\"\n"),
            &[("SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS", "99"), ("SWITCHBOARD_SLACK__TOKEN", "x")],
        );
        let err = load(&src).unwrap_err();
        let text = err.to_string();
        let file = format!("file {}", f.unwrap().path().display());
        let find = |key: &str| {
            err.problems.iter().find(|p| p.key == key).unwrap_or_else(|| panic!("no problem for {key}: {text}"))
        };
        assert!(find("telegram.token").message.contains("SWITCHBOARD_TELEGRAM__TOKEN"), "{text}");
        assert!(!text.contains("in-the-file"), "a secret leaked: {text}");
        assert_eq!(find("telegram.dm_policy").origin, file);
        assert!(find("telegram.admins").message.contains("\"x\" is not a Telegram id"), "{text}");
        assert_eq!(find("telegram.colour").message, "unknown key");
        assert!(find("telegram.groups.-200").message.contains("mention, open, listen, disabled"), "{text}");
        assert!(find("telegram.webhook_url").message.contains("webhook mode"), "{text}");
        assert_eq!(
            find("telegram.poll_timeout_secs").origin,
            "environment variable SWITCHBOARD_TELEGRAM__POLL_TIMEOUT_SECS"
        );
        assert_eq!(find("slack.token").message, "not a setting switchboard knows", "slack is not registered yet");

        let (src, _f) = source(Some("[gateway]\nedit_interval_ms = 1000\n"), &[]);
        let err = load(&src).unwrap_err();
        assert!(err.problems[0].message.contains("[telegram]"), "a moved key says where it went: {err}");

        let (src, _f) = source(
            Some("[telegram]\nallowed_users = [\"42\"]\n[telegram.groups]\n\"-100\" = \"open\"\n"),
            &[("SWITCHBOARD_TELEGRAM__TOKEN", "1:abc"), ("SWITCHBOARD_TELEGRAM__ADMINS", "7,8")],
        );
        let settings = load(&src).unwrap().settings;
        let telegram = settings.enabled_channels().next().expect("on with its token");
        let access = &telegram.settings.common().access;
        assert_eq!(access.allowed_users, ["42"]);
        assert_eq!(access.admins, ["7", "8"]);
        assert_eq!(access.groups.get("-100"), Some(&switchboard_channel_core::GroupPolicy::Open));
    }

    #[test]
    fn malformed_rules_and_unknown_tools_are_reported() {
        let (src, _f) = source(
            Some("[agent]\nallowed_tools = [\"Read\", \"Bash(git status*\"]\ndisallowed_tools = [\"Bahs\"]\n[policy.chats.\"t:1\"]\nallowed_tools = [\"Write(docs/**)\", \"rm -rf\"]\n"),
            &[],
        );
        let err = load(&src).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(text.contains("agent.allowed_tools") && text.contains("\"Bash(git status*\" is not a rule"), "{text}");
        assert!(text.contains("agent.disallowed_tools") && text.contains("\"Bahs\" names no known tool"), "{text}");
        assert!(text.contains("policy.chats.t:1.allowed_tools") && text.contains("\"rm -rf\" is not a rule"), "{text}");
    }

    #[test]
    fn the_workdir_may_not_hold_the_daemons_own_files() {
        let (src, _f) =
            source(None, &[("SWITCHBOARD_AGENT__WORKDIR", "/srv/x"), ("SWITCHBOARD_DATA_DIR", "/srv/x/data")]);
        let err = load(&src).unwrap_err();
        assert_eq!(err.problems[0].key, "agent.workdir", "{err}");
        let (src, _f) =
            source(None, &[("SWITCHBOARD_AGENT__WORKDIR", "/srv/x/work"), ("SWITCHBOARD_DATA_DIR", "/srv/x")]);
        assert!(load(&src).is_err(), "nor lie inside the data directory");
        let (src, _f) =
            source(None, &[("SWITCHBOARD_AGENT__WORKDIR", "/srv/work"), ("SWITCHBOARD_DATA_DIR", "/srv/data")]);
        assert!(load(&src).is_ok());
    }

    #[test]
    fn bad_base_url_is_reported() {
        let (src, _f) = source(None, &[("SWITCHBOARD_LLM__BASE_URL", "ftp://host")]);
        let err = load(&src).unwrap_err();
        assert_eq!(err.problems[0].key, "llm.base_url");
        assert!(err.problems[0].message.contains("http"));
    }
}
