//! The gateway between chat platforms and the agent, made of parts that each own
//! one concern. An event's way through it, file by file:
//!
//! * `ingress`: journaled (`journal`), then `deliver` returns and the adapter
//!   acknowledges the platform;
//! * `dispatch`, in the chat's `lanes`: judged by `access` (with `pairing`),
//!   answered by `commands`, or routed (`router`) to its conversation;
//! * `turns` / `turn` / `stream`: one turn at a time per conversation, the reply
//!   streamed at the chat's pace (`pacing`), approval requests shown as
//!   `prompts` and decided through `decisions`;
//! * `delivery` / `outbox`: every reply stored before it is sent, sent within
//!   the `retry` budget, resent after a restart;
//! * `operator`: the same decisions and pairing from the control socket;
//! * with replicas, `owners` (one replica per chat), `leases` and `replicas`
//!   (taking over what a stopped replica left, one receiver per exclusive
//!   ingress).
//!
//! Channel-neutral: adapters only implement `Channel`, and the gateway reads
//! only their capabilities and the common block of their settings (`registry`).

mod access;
mod commands;
mod decisions;
mod delivery;
mod dispatch;
mod flood;
mod ingress;
mod journal;
mod lanes;
mod leases;
mod names;
mod observe;
mod operator;
mod outbox;
mod owners;
mod pacing;
mod pairing;
mod places;
mod prompt_records;
mod prompts;
mod registry;
mod replicas;
mod retry;
mod router;
mod standby;
mod stream;
mod turn;
mod turns;
mod waiting;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_channel_core::InboundSink;
use tokio::task::JoinHandle;

pub use commands::COMMANDS;
pub use observe::Readiness;
pub use operator::Operator;
pub use pairing::{Pairing, PairingRequest};
pub use registry::ChannelEntry;

use crate::agent::AgentBackend;
use crate::config::Settings;
use crate::store::{ApprovalRecord, Store};

/// What a person reads when something failed on our side; the log has the detail.
const SOMETHING_WENT_WRONG: &str = "Something went wrong on my side; please try again.";

/// Answered events are forgotten after a day; platforms redeliver within minutes.
const JOURNAL_RETENTION_MS: u64 = 24 * 3600 * 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often a stopping gateway looks whether its turns and replies are done.
const SETTLE_STEP: Duration = Duration::from_millis(50);

/// The running gateway: its parts, wired once.
pub struct Gateway {
    backend: Arc<dyn AgentBackend>,
    store: Arc<dyn Store>,
    registry: registry::Registry,
    journal: journal::Journal,
    turns: turns::Turns,
    /// Readiness checks of the store waiting for an answer.
    store_checks: Arc<std::sync::atomic::AtomicUsize>,
    ingress: ingress::Ingress,
    delivery: delivery::Delivery,
    decisions: decisions::Decisions,
    operator: Operator,
    /// With replicas: the shared work's coordination.
    replicas: Option<replicas::Replicas>,
    /// With replicas: where exclusive channels receive.
    standby: Option<standby::Standby>,
    /// What takes work or receives (sweeps, exclusive ingress): stopped first.
    intake_tasks: Mutex<Vec<JoinHandle<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Gateway {
    /// Wires the parts for these channels; nothing runs until [`Gateway::start`].
    pub fn new(
        backend: Arc<dyn AgentBackend>,
        store: Arc<dyn Store>,
        settings: &Settings,
        channels: Vec<ChannelEntry>,
    ) -> Gateway {
        let backend_for_upkeep = backend.clone();
        let leases = (settings.store.postgres.replicas.enabled
            && settings.store.kind == crate::config::StoreKind::Postgres)
            .then(|| leases::Leases::new(store.clone(), settings.store.postgres.replicas));
        let owners = leases.clone().map(owners::Owners::replicas).unwrap_or_else(owners::Owners::alone);
        let standby = leases.as_ref().map(|l| standby::Standby::new(l.settings().lease_ttl));
        let registry = registry::Registry::new(channels, &settings.policy.approvers);
        let journal = journal::Journal::new(store.clone());
        let pacer = pacing::Pacer::new(registry.clone());
        let names = names::Names::default();
        let pairing = pairing::Pairing::new(store.clone());
        let router = Arc::new(router::Router::new(store.clone(), backend.clone(), settings.gateway.clone()));
        let records = prompt_records::PromptRecords::new(store.clone());
        let delivery = delivery::Delivery::new(
            outbox::Outbox::new(store.clone()),
            journal.clone(),
            registry.clone(),
            pacer.clone(),
            records.clone(),
            names.clone(),
            owners.clone(),
        );
        let prompts = prompts::Prompts::new(
            backend.clone(),
            records,
            registry.clone(),
            names.clone(),
            delivery.clone(),
            settings.policy.users_approve_own,
        );
        let turns = turns::Turns::new(
            backend.clone(),
            registry.clone(),
            delivery.clone(),
            prompts.clone(),
            pacer,
            journal.clone(),
            owners.clone(),
        )
        .limited_to(settings.gateway.max_concurrent_turns);
        let decisions = decisions::Decisions::new(backend.clone(), prompts, turns.clone(), owners.clone());
        let commands = commands::Commands {
            backend: backend.clone(),
            registry: registry.clone(),
            router: router.clone(),
            pairing: pairing.clone(),
            turns: turns.clone(),
            decisions: decisions.clone(),
            names: names.clone(),
            default_model: settings.llm.model.clone(),
            standby: standby.clone(),
        };
        let operator = Operator {
            store_requests: crate::admin::StoreRequests {
                backend: backend.clone(),
                store: store.clone(),
                secrets: settings.secrets(),
                default_model: settings.llm.model.clone(),
            },
            pairing: pairing.clone(),
            decisions: decisions.clone(),
        };
        let dispatcher = dispatch::Dispatcher {
            backend,
            registry: registry.clone(),
            pairing,
            router,
            commands,
            turns: turns.clone(),
            decisions: decisions.clone(),
            delivery: delivery.clone(),
            journal: journal.clone(),
            names,
            guests: flood::GuestLimit::default(),
        };
        let ingress = ingress::Ingress::new(journal.clone(), dispatcher, owners.clone());
        let replicas = leases.zip(standby.clone()).map(|(leases, standby)| {
            tracing::info!(holder = %leases.holder(), "running as one of several replicas on the database");
            replicas::Replicas::new(leases, owners, journal.clone(), delivery.clone(), ingress.clone(), standby)
        });
        Gateway {
            backend: backend_for_upkeep,
            store,
            registry,
            journal,
            turns,
            store_checks: Arc::default(),
            ingress,
            delivery,
            decisions,
            operator,
            replicas,
            standby,
            intake_tasks: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// Finishes what the last run left (prompts of requests that expired while it
    /// was down, undelivered replies, unanswered events), then starts every
    /// channel. Fails, naming the channel, if one cannot start.
    pub async fn start(&self, expired: &[ApprovalRecord]) -> anyhow::Result<()> {
        if let Some(replicas) = &self.replicas {
            // Renewed from the first claim on (starting a channel may take long).
            let renew = tokio::spawn(replicas.leases.clone().renew_loop());
            self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(renew);
        }
        self.journal.index_open().await?;
        let pruned = self.delivery.prune(JOURNAL_RETENTION_MS).await? + self.backend.prune().await?;
        self.decisions.settle_expired(expired).await;
        let (resent, replayed) = match &self.replicas {
            // Alone: everything unfinished is this process's.
            None => (self.delivery.recover().await?, self.ingress.replay().await?),
            // Shared: only what no live replica holds.
            Some(replicas) => {
                self.delivery.settle_old_index(false).await;
                (0, replicas.sweep().await)
            }
        };
        if replayed + resent + pruned > 0 {
            tracing::info!(replayed, resent, pruned, "recovered what the last run left");
        }
        let sink: Arc<dyn InboundSink> = Arc::new(self.ingress.clone());
        let mut intake = Vec::new();
        for served in self.registry.all() {
            let name = served.channel.name().to_string();
            if let Some(replicas) = self.replicas.as_ref().filter(|_| served.channel.exclusive_ingress()) {
                let (first, claimed) = tokio::sync::oneshot::channel();
                intake.push(tokio::spawn(replicas.clone().keep_ingress(served.channel.clone(), sink.clone(), first)));
                // Receiving here or standing by before `start` returns.
                let _ = claimed.await;
                continue;
            }
            served.channel.start(sink.clone()).await.map_err(|e| anyhow::anyhow!("channel {name}: {e}"))?;
            tracing::info!(channel = %name, "channel started");
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(replicas) = &self.replicas {
            intake.push(tokio::spawn(replicas.clone().sweep_loop()));
        }
        self.intake_tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(intake);
        tasks.push(tokio::spawn(self.delivery.clone().retry_loop()));
        let (journal, delivery, backend) = (self.journal.clone(), self.delivery.clone(), self.backend.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(PRUNE_EVERY).await;
                let _ = journal.note_listed().await;
                let _ = delivery.prune(JOURNAL_RETENTION_MS).await;
                if let Err(e) = backend.prune().await {
                    tracing::warn!(error = %e, "cannot forget old approval requests");
                }
            }
        }));
        tasks.push(tokio::spawn(async {
            loop {
                tokio::time::sleep(crate::heap::GIVE_BACK_EVERY).await;
                let _ = tokio::task::spawn_blocking(crate::heap::give_back).await;
            }
        }));
        Ok(())
    }

    /// Stops gracefully within `grace`: intake first (every channel stops
    /// receiving; sending still works), then no new turn starts, the turns under
    /// way may finish and send their replies (those waiting for a person are
    /// checkpointed as they are), and undelivered replies get one last round
    /// (an item the platform keeps refusing is not waited for). What is left
    /// stays journaled and stored for the next start. Then the background work
    /// stops.
    pub async fn stop(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.intake_tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        for served in self.registry.all() {
            served.channel.stop().await;
        }
        self.turns.drain();
        let time_left = || tokio::time::Instant::now() < deadline;
        while self.turns.working() > 0 && time_left() {
            tokio::time::sleep(SETTLE_STEP).await;
        }
        self.delivery.retry_once().await;
        while self.delivery.sending() > 0 && time_left() {
            tokio::time::sleep(SETTLE_STEP).await;
        }
        let running = self.turns.load().running;
        let (undelivered, _) = self.delivery.pending_summary().await.unwrap_or((0, None));
        tracing::info!(running, undelivered, "stopped; what was left is resumed at the next start");
        if let Err(e) = self.journal.note_listed().await {
            tracing::warn!(error = %e, "cannot note the journal as listed; the next start lists it again");
        }
        if let Some(replicas) = &self.replicas {
            // The other replicas take over now, not a lease's length later.
            replicas.leases.release_all().await;
        }
        for task in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// The control socket's handler.
    pub fn operator(&self) -> Arc<Operator> {
        Arc::new(self.operator.clone())
    }
}
