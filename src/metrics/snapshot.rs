//! The gauges of state the daemon keeps anyway, read when `/metrics` is scraped:
//! what is pending in the journal, the outbox and the queues, approvals waiting,
//! each channel's ingress, and the process's resident memory.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode as encode_text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use switchboard_channel_core::Ingress;

use super::labels::ChannelLabels;

/// One served channel as the scrape sees it.
pub struct ChannelSnapshot {
    /// Its registered name.
    pub name: String,
    pub ingress: Ingress,
}

/// What the daemon holds now; everything is a count or an age.
#[derive(Default)]
pub struct Snapshot {
    pub channels: Vec<ChannelSnapshot>,
    /// Inbound events journaled and not yet answered.
    pub journal_pending: u64,
    pub journal_oldest: Option<Duration>,
    /// Messages waiting behind a running turn, in all conversations.
    pub backlog: u64,
    /// The most waiting in any one conversation.
    pub backlog_max: u64,
    /// Turns running now.
    pub turns_running: u64,
    /// Turns waiting in line for a place (`gateway.max_concurrent_turns`).
    pub turns_in_line: u64,
    pub approvals_pending: u64,
    pub outbox_pending: u64,
    pub outbox_oldest: Option<Duration>,
}

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Default)]
pub(super) struct Gauges {
    ready: Family<ChannelLabels, Gauge>,
    last_ingress: Family<ChannelLabels, FloatGauge>,
    journal_pending: Gauge,
    journal_oldest: FloatGauge,
    backlog: Gauge,
    backlog_max: Gauge,
    turns_running: Gauge,
    turns_in_line: Gauge,
    approvals_pending: Gauge,
    outbox_pending: Gauge,
    outbox_oldest: FloatGauge,
    resident: Gauge,
}

impl Gauges {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "channel_ready",
            "1 while the channel receives (its ingress made progress within its bound), else 0",
            self.ready.clone(),
        );
        registry.register(
            "channel_last_ingress_timestamp_seconds",
            "When the channel's ingress last made progress (a poll answered, a socket frame), Unix time",
            self.last_ingress.clone(),
        );
        registry.register(
            "journal_pending",
            "Inbound events journaled and not yet answered",
            self.journal_pending.clone(),
        );
        registry.register(
            "journal_oldest_pending_age_seconds",
            "Age of the oldest unanswered inbound event (0 when none)",
            self.journal_oldest.clone(),
        );
        registry.register(
            "conversation_backlog",
            "Messages waiting behind running turns, in all conversations",
            self.backlog.clone(),
        );
        registry.register(
            "conversation_backlog_max",
            "The most messages waiting in any one conversation",
            self.backlog_max.clone(),
        );
        registry.register("turns_running", "Turns running now", self.turns_running.clone());
        registry.register(
            "turns_in_line",
            "Turns waiting in line for a place among those allowed to run at once",
            self.turns_in_line.clone(),
        );
        registry.register(
            "approvals_pending",
            "Approval requests waiting for a decision",
            self.approvals_pending.clone(),
        );
        registry.register("outbox_pending", "Replies stored and not yet wholly delivered", self.outbox_pending.clone());
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest undelivered reply (0 when none)",
            self.outbox_oldest.clone(),
        );
        registry.register("resident_memory_bytes", "The process's resident memory", self.resident.clone());
    }

    fn set(&self, snapshot: &Snapshot) {
        let now_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        for channel in &snapshot.channels {
            let labels = ChannelLabels { channel: channel.name.clone() };
            self.ready.get_or_create(&labels).set(i64::from(channel.ingress.live()));
            if let Some(age) = channel.ingress.age() {
                self.last_ingress.get_or_create(&labels).set(now_unix.saturating_sub(age).as_secs_f64());
            }
        }
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let age = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.journal_pending.set(count(snapshot.journal_pending));
        self.journal_oldest.set(age(snapshot.journal_oldest));
        self.backlog.set(count(snapshot.backlog));
        self.backlog_max.set(count(snapshot.backlog_max));
        self.turns_running.set(count(snapshot.turns_running));
        self.turns_in_line.set(count(snapshot.turns_in_line));
        self.approvals_pending.set(count(snapshot.approvals_pending));
        self.outbox_pending.set(count(snapshot.outbox_pending));
        self.outbox_oldest.set(age(snapshot.outbox_oldest));
        self.resident.set(count(resident_bytes()));
    }
}

/// Every metric as OpenMetrics text, the gauges set from `snapshot` first.
pub fn encode(snapshot: &Snapshot) -> String {
    let metrics = super::global();
    metrics.gauges.set(snapshot);
    let mut text = String::new();
    if let Err(e) = encode_text(&mut text, &metrics.registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    text
}

/// The process's resident set size, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
