//! Typed settings: built-in defaults < TOML file < `SWITCHBOARD_*` environment.
//!
//! Every problem found while loading (bad types, unknown keys, secrets in the file,
//! out-of-range values) is collected and reported together, each with where it came
//! from: the file and key, the environment variable, or the default.

mod loader;
mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use switchboard_channel_core::ChannelSettings;

use crate::policy::{MemoryWrites, Tier, TierLimit};

pub use loader::{load, load_with};
pub use source::ConfigSource;

/// Keys outside the channel sections whose values are secrets: they may only come
/// from the environment and are never printed. Channel crates name their own.
pub const SECRET_KEYS: &[&str] = &["llm.api_key", "store.postgres.url"];

/// Everything switchboard reads from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// The configuration file these settings came from (absolute), if any; not a
    /// key. Tools never see it.
    pub config_file: Option<PathBuf>,
    pub llm: LlmSettings,
    pub agent: AgentSettings,
    pub tools: ToolSettings,
    pub policy: PolicySettings,
    pub gateway: GatewaySettings,
    pub store: StoreSettings,
    pub engine: EngineSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
    /// One entry per registered channel, configured or not, in registration order.
    pub channels: Vec<ChannelSection>,
}

/// A channel's section (`[telegram]`) as its crate read it.
#[derive(Debug, Clone)]
pub struct ChannelSection {
    /// The channel's registered name, also its section's.
    pub name: &'static str,
    /// The crate's settings: the common block, whether it is on, how to build it.
    pub settings: Arc<dyn ChannelSettings>,
}

impl Settings {
    /// Every configured secret value: the model's API key and the channels'
    /// tokens. They are masked wherever a tool call is shown.
    pub fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.llm.api_key.iter().cloned().collect();
        for section in &self.channels {
            all.extend(section.settings.secrets());
        }
        all
    }

    /// What tools must never reach: the data directory and the configuration file,
    /// as absolute paths.
    pub fn daemon_paths(&self) -> Vec<PathBuf> {
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut paths = vec![absolute(&self.data_dir)];
        paths.extend(self.config_file.as_deref().map(absolute));
        paths
    }

    /// Everyone who is an admin somewhere, as stable channel-scoped ids: each
    /// channel's `admins` and the approvers.
    pub fn admin_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for section in &self.channels {
            for id in &section.settings.common().access.admins {
                ids.push(format!("{}:{id}", section.name));
            }
        }
        for approver in &self.policy.approvers {
            if !ids.contains(approver) {
                ids.push(approver.clone());
            }
        }
        ids
    }

    /// The channel sections that turn their channel on.
    pub fn enabled_channels(&self) -> impl Iterator<Item = &ChannelSection> {
        self.channels.iter().filter(|c| c.settings.enabled())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// `per-chat` (each chat or topic its own conversation) or `shared` (one for all).
    pub shared_conversation: bool,
    /// Explicit routes: chat id (`telegram:123`) -> conversation name.
    pub routes: BTreeMap<String, String>,
    /// On SIGTERM, how long running turns and undelivered replies get to finish.
    pub stop_grace_secs: u64,
    /// How many turns may be under way at once in the whole daemon; more wait in
    /// line. A turn waiting for a person's approval does not count.
    pub max_concurrent_turns: usize,
}

/// Where the store is, how much memory it may keep, and how long it keeps what
/// is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Which backend holds the data.
    pub kind: StoreKind,
    /// The PostgreSQL database, when `kind` is `Postgres`.
    pub postgres: PostgresSettings,
    /// The store's page cache, in MiB: the bound on the data it keeps in memory
    /// (SQLite's page cache; sled's, which still keeps a little for every page it
    /// has read, so with sled memory grows slowly with the data).
    pub cache_mb: u64,
    /// Decided approval requests are forgotten after this many days (the audit
    /// log keeps every decision).
    pub approval_retention_days: u64,
}

/// The operator's HTTP endpoints (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerSettings {
    /// Where they listen; `None` (the default): no listener.
    pub listen: Option<std::net::SocketAddr>,
}

/// How the daemon's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// One human line per event, or one JSON object per line with the same fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The background engine that serves SDK sessions when no daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// It exits after this many seconds without a session.
    pub idle_secs: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings { idle_secs: 30 }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Sqlite,
            postgres: PostgresSettings { url: String::new(), pool_size: 8, replicas: ReplicaSettings::default() },
            cache_mb: 64,
            approval_retention_days: 30,
        }
    }
}

/// The store's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// SQLite, one file in `data_dir`: one machine, nothing else to run, memory
    /// bounded by `cache_mb`.
    #[default]
    Sqlite,
    /// sled, in `data_dir`: what earlier versions used on one machine.
    Sled,
    /// A PostgreSQL database.
    Postgres,
}

impl StoreKind {
    /// `sqlite`, `sled` or `postgres`.
    pub fn parse(text: &str) -> Option<StoreKind> {
        match text {
            "sqlite" => Some(StoreKind::Sqlite),
            "sled" => Some(StoreKind::Sled),
            "postgres" => Some(StoreKind::Postgres),
            _ => None,
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Sled => "sled",
            StoreKind::Postgres => "postgres",
        }
    }

    /// The store on one machine when none is named: sled where `data_dir` holds
    /// a sled store of an earlier version (and no SQLite one), so that an
    /// upgrade finds its data; SQLite otherwise.
    pub fn embedded_in(data_dir: &std::path::Path) -> StoreKind {
        let sled = data_dir.join("db").join("conf").exists();
        let sqlite = data_dir.join(crate::store::SQLITE_FILE).exists();
        if sled && !sqlite {
            StoreKind::Sled
        } else {
            StoreKind::Sqlite
        }
    }
}

/// How to reach the PostgreSQL database.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/database`: a secret (it may hold the password).
    pub url: String,
    /// Connections kept open at most.
    pub pool_size: usize,
    /// Whether several processes share the database, and how they take turns.
    pub replicas: ReplicaSettings,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &"(hidden)")
            .field("pool_size", &self.pool_size)
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// Replicas: several `serve` processes on one PostgreSQL database. Off, the
/// first process takes the database for itself and a second is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Whether this process shares the database with other replicas.
    pub enabled: bool,
    /// How long a lease (a chat, a poller) outlives its holder's last renewal:
    /// the longest a dead replica's work waits before another takes it.
    pub lease_ttl: std::time::Duration,
    /// How often a holder renews its leases (at most a third of the TTL).
    pub renew_every: std::time::Duration,
    /// How often a replica looks for work nobody holds (events, replies, a
    /// poller's lease).
    pub poll_every: std::time::Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            enabled: false,
            lease_ttl: std::time::Duration::from_secs(15),
            renew_every: std::time::Duration::from_secs(5),
            poll_every: std::time::Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub approval_timeout_secs: u64,
    /// Sender ids (`telegram:123`) who may decide any approval: admins everywhere.
    pub approvers: Vec<String>,
    /// Users (not guests) may decide their own requests.
    pub users_approve_own: bool,
    /// How long an "always allow here" grant lasts.
    pub grant_expiry_hours: u64,
    /// The most each tier's tool calls may do, everywhere unless overridden.
    pub limits: TierLimits,
    /// Whether a user's memory edits run, ask or are refused, in their DM and in groups.
    pub user_memory_in_dm: MemoryWrites,
    pub user_memory_in_groups: MemoryWrites,
    /// What the agent is told when it tries `AskUserQuestion`.
    pub ask_user_question_message: String,
    /// Overrides for every chat of a channel (`telegram`, `discord`, `slack`, `console`).
    pub channels: BTreeMap<String, PolicyOverride>,
    /// Overrides for one chat (`telegram:123`); they win over the channel's.
    pub chats: BTreeMap<String, PolicyOverride>,
}

/// A channel's or chat's changes to the agent's policy: the mode replaces the agent's,
/// the lists add to the agent's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyOverride {
    pub permission_mode: Option<PermissionMode>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    /// Replaces the tiers' limits given (`None` keeps the broader setting).
    pub guest_limit: Option<TierLimit>,
    pub user_limit: Option<TierLimit>,
    pub admin_limit: Option<TierLimit>,
}

/// The limit of each tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    pub guest: TierLimit,
    pub user: TierLimit,
    pub admin: TierLimit,
}

impl TierLimits {
    /// The limit of `tier`.
    pub fn of(&self, tier: Tier) -> TierLimit {
        match tier {
            Tier::Guest => self.guest,
            Tier::User => self.user,
            Tier::Admin => self.admin,
        }
    }

    /// Applies an override's limits.
    pub fn apply(&mut self, o: &PolicyOverride) {
        self.guest = o.guest_limit.unwrap_or(self.guest);
        self.user = o.user_limit.unwrap_or(self.user);
        self.admin = o.admin_limit.unwrap_or(self.admin);
    }
}

impl Default for TierLimits {
    /// Guests search their own conversation; users and admins get what the mode allows.
    fn default() -> Self {
        TierLimits { guest: TierLimit::Conversation, user: TierLimit::Mode, admin: TierLimit::Mode }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSettings {
    /// Lets WebFetch reach loopback, link-local and private addresses.
    pub webfetch_allow_private_network: bool,
    /// What `conversation_search` searches for admins: their conversation only, or
    /// every conversation of the agent. Everyone else searches their own.
    pub conversation_search_all: bool,
}

#[derive(Clone, PartialEq)]
pub struct LlmSettings {
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub context_window: u64,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    /// Stream replies (false: ask for whole replies, for servers that cannot
    /// stream tool calls).
    pub stream: bool,
}

// Hand-written so that a stray `{:?}` can never print the API key.
impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("model", &self.model)
            .field("context_window", &self.context_window)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_retries", &self.max_retries)
            .field("stream", &self.stream)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    Standard,
    AcceptEdits,
    Memory,
    Unrestricted,
    /// Read-only tools only; everything else is refused without asking.
    Plan,
    /// Every call is asked, read-only ones too.
    Strict,
}

impl PermissionMode {
    pub const NAMES: &'static [&'static str] = &["standard", "acceptEdits", "memory", "unrestricted", "plan", "strict"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(Self::Standard),
            "acceptEdits" => Some(Self::AcceptEdits),
            "memory" => Some(Self::Memory),
            "unrestricted" => Some(Self::Unrestricted),
            "plan" => Some(Self::Plan),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub name: String,
    pub persona: String,
    pub human: String,
    /// A preset name (`default`, `minimal`) or custom prompt text.
    pub system_prompt: String,
    pub system_prompt_append: String,
    pub permission_mode: PermissionMode,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    pub workdir: PathBuf,
    pub max_steps: u32,
    pub compaction_threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./data"),
            config_file: None,
            llm: LlmSettings {
                base_url: "http://127.0.0.1:11434/v1".into(),
                api_key: None,
                model: "llama3.2".into(),
                context_window: 128_000,
                request_timeout_secs: 120,
                max_retries: 3,
                stream: true,
            },
            agent: AgentSettings {
                name: "switchboard".into(),
                persona: "I am a helpful, concise assistant. I remember what matters across conversations.".into(),
                human: String::new(),
                system_prompt: "default".into(),
                system_prompt_append: String::new(),
                permission_mode: PermissionMode::Standard,
                allowed_tools: Vec::new(),
                disallowed_tools: Vec::new(),
                workdir: PathBuf::from("./workspace"),
                max_steps: 25,
                compaction_threshold: 0.8,
            },
            tools: ToolSettings { webfetch_allow_private_network: false, conversation_search_all: false },
            gateway: GatewaySettings {
                shared_conversation: false,
                routes: BTreeMap::new(),
                stop_grace_secs: 10,
                max_concurrent_turns: 64,
            },
            store: StoreSettings::default(),
            engine: EngineSettings::default(),
            server: ServerSettings::default(),
            log: LogSettings::default(),
            channels: Vec::new(),
            policy: PolicySettings {
                approval_timeout_secs: 600,
                approvers: Vec::new(),
                users_approve_own: false,
                grant_expiry_hours: 168,
                limits: TierLimits::default(),
                user_memory_in_dm: MemoryWrites::Allowed,
                user_memory_in_groups: MemoryWrites::Approval,
                ask_user_question_message: crate::policy::DEFAULT_ASK_USER_QUESTION_MESSAGE.into(),
                channels: BTreeMap::new(),
                chats: BTreeMap::new(),
            },
        }
    }
}

/// One thing wrong with the configuration, and where the offending value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, or empty for a problem with the whole file.
    pub key: String,
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{} ({}): {}", self.key, self.origin, self.message)
        }
    }
}

/// Every problem found while loading, reported as one error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        writeln!(f, "the configuration has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Settings plus where the file layer came from, for `check` and error messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub file: Option<PathBuf>,
}

/// The environment variable that sets `key` (`llm.api_key` -> `SWITCHBOARD_LLM__API_KEY`).
pub fn env_var_for(key: &str) -> String {
    format!("SWITCHBOARD_{}", key.to_ascii_uppercase().replace('.', "__"))
}
