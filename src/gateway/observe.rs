//! What an operator sees of the running gateway: readiness (the store answers
//! and every channel receives), the metrics snapshot of its queues, and each
//! channel's status line with a deaf channel said plainly.

use std::sync::atomic::Ordering;
use std::time::Duration;

use switchboard_channel_core::{Channel, Ingress};

use super::{standby, Gateway};
use crate::metrics::{ChannelSnapshot, Snapshot};
use crate::store::{blocking, now_ms, ApprovalState};

/// How long the store may take to answer a readiness check.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Store checks that may be waiting for an answer at once.
const MAX_STORE_CHECKS: usize = 4;

/// Whether the gateway can serve, and why not.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Each channel's name and how its receiving stands.
    pub channels: Vec<(String, Ingress)>,
    /// Why the store cannot serve: it did not answer, or it refuses every write
    /// (`None`: it answered and writes).
    pub store_problem: Option<String>,
}

impl Readiness {
    /// Ready: the store answers and every channel receives.
    pub fn ready(&self) -> bool {
        self.store_problem.is_none() && self.channels.iter().all(|(_, ingress)| ingress.live())
    }

    /// One line per check: `store: ok`, `telegram: not receiving: …`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("store: {}", self.store_problem.as_deref().unwrap_or("ok"))];
        for (name, ingress) in &self.channels {
            lines.push(format!("{name}: {}", ingress.problem().unwrap_or_else(|| "receiving".into())));
        }
        lines
    }
}

/// One of the store checks that may wait at once; given back when dropped.
struct CheckSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for CheckSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn age_of(at_ms: Option<u64>) -> Option<Duration> {
    at_ms.map(|at| Duration::from_millis(now_ms().saturating_sub(at)))
}

impl Gateway {
    /// Each channel's ingress, as its adapter reports it (with replicas, an
    /// exclusive channel received by another replica is standing by).
    pub fn ingress(&self) -> Vec<(String, Ingress)> {
        let standby = self.standby.as_ref();
        self.registry.all().map(|s| (s.channel.name().to_string(), standby::ingress(&*s.channel, standby))).collect()
    }

    /// Checks the store with a read and gathers every channel's ingress. At
    /// most a few store checks at a time: a store that hangs does not collect a
    /// blocked thread per probe (a healthy one answers in microseconds).
    pub async fn readiness(&self) -> Readiness {
        let store_problem = if self.store_checks.fetch_add(1, Ordering::SeqCst) >= MAX_STORE_CHECKS {
            self.store_checks.fetch_sub(1, Ordering::SeqCst);
            Some("no answer yet to earlier checks".to_string())
        } else {
            // Given back however the read ends (or if it never runs).
            let slot = CheckSlot(self.store_checks.clone());
            let read = blocking(&self.store, move |s| {
                let _slot = slot;
                s.schema_version()?;
                Ok(s.broken())
            });
            match tokio::time::timeout(STORE_CHECK_TIMEOUT, read).await {
                Ok(Ok(None)) => None,
                Ok(Ok(Some(broken))) => Some(format!("cannot write: {broken}")),
                Ok(Err(e)) => Some(format!("cannot read: {e}")),
                Err(_) => Some(format!("no answer within {} s", STORE_CHECK_TIMEOUT.as_secs())),
            }
        };
        Readiness { channels: self.ingress(), store_problem }
    }

    /// The counts and ages `/metrics` shows as gauges.
    pub async fn snapshot(&self) -> Snapshot {
        let (journal_pending, journal_oldest) = self.journal.pending_summary();
        let load = self.turns.load();
        let (outbox_pending, outbox_oldest) = self.delivery.pending_summary().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot count the outbox for metrics");
            (0, None)
        });
        let approvals = blocking(&self.store, |s| s.approvals()).await.unwrap_or_default();
        let approvals_pending = approvals.iter().filter(|a| a.state == ApprovalState::Pending).count();
        let count = |n: usize| n as u64;
        Snapshot {
            channels: self.ingress().into_iter().map(|(name, ingress)| ChannelSnapshot { name, ingress }).collect(),
            journal_pending: count(journal_pending),
            journal_oldest: age_of(journal_oldest),
            backlog: count(load.waiting),
            backlog_max: count(load.most),
            turns_running: count(load.running),
            turns_in_line: count(load.in_line),
            approvals_pending: count(approvals_pending),
            outbox_pending: count(outbox_pending),
            outbox_oldest: age_of(outbox_oldest),
        }
    }

    /// What `switchboard status` prints: version, each channel's health and
    /// last ingress, the store, and every queue, in lines of plain text; and
    /// whether it is ready.
    pub async fn status_report(&self) -> (String, bool) {
        let readiness = self.readiness().await;
        let snapshot = self.snapshot().await;
        let secs = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), |d| format!("{} s", d.as_secs()));
        let mut out = format!(
            "switchboard {}: {}\n",
            env!("CARGO_PKG_VERSION"),
            if readiness.ready() { "ready" } else { "NOT READY" }
        );
        for (name, line) in self.statuses() {
            let ingress = snapshot.channels.iter().find(|c| c.name == name).map(|c| c.ingress);
            let last = match ingress {
                Some(Ingress::Listening) => "listening".to_string(),
                Some(Ingress::Standby) => "standby".to_string(),
                other => format!("last ingress {} ago", secs(other.and_then(|i| i.age()))),
            };
            out.push_str(&format!("{name}: {line} ({last})\n"));
        }
        out.push_str(&format!("store: {}\n", readiness.store_problem.as_deref().unwrap_or("ok")));
        out.push_str(&format!(
            "turns running: {}; in line for a place: {}; messages waiting: {} (most in one conversation: {})\n",
            snapshot.turns_running, snapshot.turns_in_line, snapshot.backlog, snapshot.backlog_max
        ));
        out.push_str(&format!(
            "journal: {} unanswered (oldest {})\n",
            snapshot.journal_pending,
            secs(snapshot.journal_oldest)
        ));
        out.push_str(&format!("approvals pending: {}\n", snapshot.approvals_pending));
        out.push_str(&format!(
            "outbox: {} undelivered (oldest {})\n",
            snapshot.outbox_pending,
            secs(snapshot.outbox_oldest)
        ));
        (out, readiness.ready())
    }

    /// Each served channel's name and health line, in start order; a channel
    /// that stopped receiving says so, whatever its connection claims.
    pub fn statuses(&self) -> Vec<(String, String)> {
        let standby = self.standby.as_ref();
        self.registry
            .all()
            .map(|s| (s.channel.name().to_string(), standby::status_line(&*s.channel, standby)))
            .collect()
    }
}

/// A channel's health line; one that stopped receiving says so, whatever its
/// connection claims (what `/status` and `switchboard status` show).
pub fn status_line(channel: &dyn Channel) -> String {
    let line = channel.status();
    match channel.ingress().problem() {
        Some(problem) => format!("{line}; {problem}"),
        None => line,
    }
}
