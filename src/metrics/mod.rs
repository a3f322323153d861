//! The daemon's metrics, served as OpenMetrics text on `/metrics`. Content-free
//! and low-cardinality by construction: every label is an enum of this module,
//! or a channel's registered name (a fixed set per configuration). No label ever
//! holds a chat, a user, message text or a tool's arguments.
//!
//! Counters and histograms live in one process-wide [`Metrics`], updated where
//! things happen (`global()`); the gauges of state the daemon already keeps
//! (journal, outbox, queues, approvals, channel ingress) are read when scraped,
//! from a [`Snapshot`] (`snapshot.rs`).

mod labels;
mod snapshot;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use labels::{
    ApprovalEnd, DeliveryOutcome, InboundKindLabel, InboundOutcome, ModelError, ModelOutcome, ToolDecision, ToolName,
    TurnOutcome,
};
use labels::{
    ApprovalLabels, ChannelLabels, DeliveryLabels, InboundLabels, ModelLabels, TokenKind, TokenLabels, ToolLabels,
    TurnLabels,
};
pub use snapshot::{encode, ChannelSnapshot, Snapshot};

/// Every counter and histogram of the process.
pub struct Metrics {
    inbound: Family<InboundLabels, Counter>,
    turns: Family<TurnLabels, Counter>,
    turn_seconds: Family<TurnLabels, Histogram>,
    model_requests: Family<ModelLabels, Counter>,
    model_seconds: Histogram,
    model_tokens: Family<TokenLabels, Counter>,
    tool_decisions: Family<ToolLabels, Counter>,
    approval_wait: Family<ApprovalLabels, Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    rate_limits: Family<ChannelLabels, Counter>,
    flush_seconds: Histogram,
    write_seconds: Histogram,
    flushes: AtomicU64,
    /// Writers each flush served (group commit).
    commit_group: Histogram,
    /// Durable writes (each a store operation that waited for a flush).
    writes: AtomicU64,
    /// Every family above, and the scrape-time gauges of `snapshot`.
    registry: Registry,
    gauges: snapshot::Gauges,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to about 9 minutes.
    Histogram::new(exponential_buckets(0.001, 3.0, 13))
}

fn wait_buckets() -> Histogram {
    // 1 s to about 18 hours.
    Histogram::new(exponential_buckets(1.0, 3.0, 11))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchboard");
        let metrics = Metrics {
            inbound: Family::default(),
            turns: Family::default(),
            turn_seconds: Family::new_with_constructor(seconds_buckets),
            model_requests: Family::default(),
            model_seconds: seconds_buckets(),
            model_tokens: Family::default(),
            tool_decisions: Family::default(),
            approval_wait: Family::new_with_constructor(wait_buckets),
            deliveries: Family::default(),
            rate_limits: Family::default(),
            // 10 µs to about 1.8 s.
            flush_seconds: Histogram::new(exponential_buckets(0.00001, 3.0, 12)),
            // 10 µs to about 1.8 s.
            write_seconds: Histogram::new(exponential_buckets(0.00001, 3.0, 12)),
            flushes: AtomicU64::new(0),
            // 1 to 1,024 writers.
            commit_group: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            writes: AtomicU64::new(0),
            gauges: snapshot::Gauges::default(),
            registry: Registry::default(),
        };
        registry.register(
            "inbound_events",
            "Events from the platforms, by channel, kind and what became of them",
            metrics.inbound.clone(),
        );
        registry.register("turns", "Agent turns run by the gateway, by outcome", metrics.turns.clone());
        registry.register("turn_duration_seconds", "How long turns took, by outcome", metrics.turn_seconds.clone());
        registry.register(
            "model_requests",
            "Model calls, by outcome and error class (retries inside one call not counted)",
            metrics.model_requests.clone(),
        );
        registry.register("model_request_duration_seconds", "How long model calls took", metrics.model_seconds.clone());
        registry.register("model_tokens", "Tokens the model endpoint reported, by kind", metrics.model_tokens.clone());
        registry.register(
            "tool_decisions",
            "can_use_tool decisions, by tool (built-in names; others as `other`) and decision",
            metrics.tool_decisions.clone(),
        );
        registry.register(
            "approval_wait_seconds",
            "How long approval requests waited until they ended, by how they ended",
            metrics.approval_wait.clone(),
        );
        registry.register(
            "outbox_deliveries",
            "Reply parts the outbox tried to deliver, by channel and outcome",
            metrics.deliveries.clone(),
        );
        registry.register(
            "platform_rate_limits",
            "Times a platform asked us to slow down, by channel",
            metrics.rate_limits.clone(),
        );
        registry.register(
            "store_flush_duration_seconds",
            "Durable flushes of the store (writes waiting together share one); the count is the flush count",
            metrics.flush_seconds.clone(),
        );
        registry.register(
            "store_commit_group_writes",
            "How many store writes each flush made durable (group commit)",
            metrics.commit_group.clone(),
        );
        registry.register(
            "store_write_duration_seconds",
            "Store writes (journal, transcript, outbox, approvals), each until its flush made it durable",
            metrics.write_seconds.clone(),
        );
        metrics.gauges.register(&mut registry);
        Metrics { registry, ..metrics }
    }

    /// An event from a platform, and what became of it.
    pub fn inbound(&self, channel: &str, kind: InboundKindLabel, outcome: InboundOutcome) {
        let labels = InboundLabels { channel: channel.to_string(), kind, outcome };
        self.inbound.get_or_create(&labels).inc();
    }

    /// A turn ended.
    pub fn turn(&self, outcome: TurnOutcome, took: Duration) {
        let labels = TurnLabels { outcome };
        self.turns.get_or_create(&labels).inc();
        self.turn_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A model call ended (after its retries).
    pub fn model_request(&self, outcome: ModelOutcome, error: ModelError, took: Duration) {
        self.model_requests.get_or_create(&ModelLabels { outcome, error }).inc();
        self.model_seconds.observe(took.as_secs_f64());
    }

    /// Tokens a model call used, as its endpoint reported them.
    pub fn model_tokens(&self, prompt: u64, completion: u64) {
        self.model_tokens.get_or_create(&TokenLabels { kind: TokenKind::Prompt }).inc_by(prompt);
        self.model_tokens.get_or_create(&TokenLabels { kind: TokenKind::Completion }).inc_by(completion);
    }

    /// A `can_use_tool` decision.
    pub fn tool_decision(&self, tool: &str, decision: ToolDecision) {
        let labels = ToolLabels { tool: ToolName::of(tool), decision };
        self.tool_decisions.get_or_create(&labels).inc();
    }

    /// An approval request ended after waiting `waited`.
    pub fn approval_ended(&self, end: ApprovalEnd, waited: Duration) {
        self.approval_wait.get_or_create(&ApprovalLabels { end }).observe(waited.as_secs_f64());
    }

    /// The outbox tried to deliver a reply part.
    pub fn delivery(&self, channel: &str, outcome: DeliveryOutcome) {
        self.deliveries.get_or_create(&DeliveryLabels { channel: channel.to_string(), outcome }).inc();
    }

    /// A platform answered with a rate limit.
    pub fn rate_limited(&self, channel: &str) {
        self.rate_limits.get_or_create(&ChannelLabels { channel: channel.to_string() }).inc();
    }

    /// The store made its writes durable.
    pub fn flushed(&self, took: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// A store write was made durable, `took` from its start to its flush's end.
    pub fn store_write(&self, took: Duration) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_seconds.observe(took.as_secs_f64());
    }

    /// A flush made `writes` store writes durable at once.
    pub fn commit_group(&self, writes: usize) {
        self.commit_group.observe(writes as f64);
    }

    /// How many durable flushes the store made so far (for benchmarks).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// How many durable writes the store made so far (for benchmarks).
    pub fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}
