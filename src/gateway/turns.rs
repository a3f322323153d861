//! The turns of every conversation: one at a time per conversation, in arrival
//! order; messages that arrive meanwhile wait (see `waiting`) and are answered
//! together or one by one, as the channel's `busy` setting says; the running turn
//! can be cancelled; a turn whose approval was decided after a restart is
//! resumed here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_channel_core::{Busy, BusySettings, ChatKey, Sender};
use tokio_util::sync::CancellationToken;

use super::delivery::Delivery;
use super::journal::Journal;
use super::lanes::{self, Lanes};
use super::owners::Owners;
use super::pacing::Pacer;
use super::places::Places;
use super::prompts::Prompts;
use super::registry::Registry;
use super::turn::{self, TurnJob};
use super::waiting::{self, Admitted, Incoming, Waiting};
use crate::agent::AgentBackend;
use crate::policy::Tier;
use crate::store::ApprovalRecord;

/// A turn taken up for a conversation: how to stop it, whose messages it
/// answers, and where it is.
pub struct Running {
    pub cancel: CancellationToken,
    pub senders: Vec<String>,
    pub phase: Phase,
}

/// Where a turn taken up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting in line for a place among the turns allowed to run at once,
    /// before it has begun.
    InLine,
    /// Loading, calling the model or tools (its reply's delivery comes after
    /// its entry is gone).
    Working,
    /// Waiting for a person (an approval): its place is given back meanwhile.
    Asking,
}

/// How busy the turns are, for `/metrics` and the status page.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Turns running (working or waiting for a person).
    pub running: usize,
    /// Turns waiting in line for a place (`gateway.max_concurrent_turns`).
    pub in_line: usize,
    /// Messages waiting behind turns, in all conversations.
    pub waiting: usize,
    /// The most messages waiting for one conversation.
    pub most: usize,
}

/// What `/cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    Cancelled,
    NothingRunning,
    /// Someone else's turn, and the asker is no admin.
    NotYours,
}

#[derive(Clone)]
pub struct Turns {
    pub(super) backend: Arc<dyn AgentBackend>,
    pub(super) registry: Registry,
    pub(super) delivery: Delivery,
    pub(super) prompts: Prompts,
    pub(super) pacer: Pacer,
    pub(super) journal: Journal,
    /// With replicas: one replica at a time runs a conversation's turn.
    pub(super) owners: Owners,
    lanes: Lanes,
    waiting: Waiting,
    /// The running turn's canceller and whose message it answers, by conversation.
    active: Arc<Mutex<HashMap<String, Running>>>,
    /// Whether the daemon is stopping, and how many turns are under way.
    flight: Arc<Mutex<Flight>>,
    /// One place per turn running (`gateway.max_concurrent_turns`); a turn
    /// waiting for an approval gives its place back, and so does one whose
    /// agent is done (before its reply is stored and sent).
    pub(super) places: Places,
}

/// Turns under way (from their start until their reply is stored and sent),
/// and whether new ones may start: one lock, so none slips past a stop.
#[derive(Default)]
struct Flight {
    draining: bool,
    under_way: usize,
}

/// A turn under way; counted until dropped.
pub struct UnderWay {
    flight: Arc<Mutex<Flight>>,
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.flight.lock().unwrap_or_else(|p| p.into_inner()).under_way -= 1;
    }
}

impl Turns {
    pub fn new(
        backend: Arc<dyn AgentBackend>,
        registry: Registry,
        delivery: Delivery,
        prompts: Prompts,
        pacer: Pacer,
        journal: Journal,
        owners: Owners,
    ) -> Turns {
        Turns {
            backend,
            registry,
            delivery,
            prompts,
            pacer,
            journal,
            owners,
            lanes: Lanes::new(lanes::CONVERSATION_IDLE),
            waiting: Waiting::default(),
            active: Arc::default(),
            flight: Arc::default(),
            places: Places::unlimited(),
        }
    }

    /// At most `turns` running at once (`gateway.max_concurrent_turns`), guests'
    /// in at most three quarters of the places; without it, no limit.
    pub fn limited_to(mut self, turns: usize) -> Turns {
        self.places = Places::new(turns);
        self
    }

    /// Runs `job` after the conversation's earlier work.
    pub fn queue(&self, job: TurnJob) {
        let conversation = job.conversation_id.clone();
        self.lanes.push(&conversation, Box::pin(turn::run(self.clone(), job)));
    }

    /// A message for `conversation`: it waits, within `busy`'s bounds, for the
    /// next turn that takes it; with `interrupt`, the running turn stops when its
    /// sender could stop it with `/cancel` (the person it answers, or an admin).
    pub fn submit(&self, conversation: &str, incoming: Incoming, busy: &BusySettings) -> Admitted {
        let chat = incoming.message.chat.clone();
        let (sender, tier) = (incoming.message.sender.id.clone(), incoming.tier);
        let admitted = self.waiting.admit(conversation, incoming, busy);
        if admitted == Admitted::QueueTurn {
            let (turns, conversation, mode) = (self.clone(), conversation.to_string(), busy.mode);
            self.lanes.push(
                &conversation.clone(),
                Box::pin(async move {
                    let batch = turns.waiting.take(&conversation, &chat, mode);
                    if !batch.is_empty() {
                        turn::run(turns, waiting::turn_for(&conversation, &batch)).await;
                    }
                }),
            );
        }
        // A turn still in line for a place is not interrupted: it has not begun,
        // and its messages would be dropped unread; this one runs after it.
        if busy.mode == Busy::Interrupt && !matches!(admitted, Admitted::Full { .. }) {
            let active = self.active();
            let stoppable = active.get(conversation).filter(|r| r.phase != Phase::InLine);
            if let Some(running) = stoppable.filter(|r| tier == Tier::Admin || r.senders.contains(&sender)) {
                running.cancel.cancel();
            }
        }
        admitted
    }

    /// Takes the conversation's waiting messages away unanswered (all of them,
    /// or only `sender`'s) and marks them answered; returns how many there were.
    pub async fn discard(&self, conversation: &str, sender: Option<&str>) -> usize {
        let discarded = self.waiting.discard(conversation, sender);
        let events: Vec<String> = discarded.into_iter().map(|i| i.event_id).collect();
        self.delivery.nothing_to_send(&events).await;
        events.len()
    }

    /// Runs other work (a listened message) in the conversation's order.
    pub fn queue_work(&self, conversation: &str, work: futures::future::BoxFuture<'static, ()>) {
        self.lanes.push(conversation, work);
    }

    /// Messages waiting for the conversation, plus one for a running turn.
    pub fn waiting(&self, conversation: &str) -> usize {
        self.waiting.count(conversation) + usize::from(self.active().contains_key(conversation))
    }

    /// Turns running now (working or waiting for a person), turns waiting in
    /// line for a place, messages waiting in all, and the most for one conversation.
    pub fn load(&self) -> Load {
        let (waiting, most) = self.waiting.totals();
        let active = self.active();
        let in_line = active.values().filter(|r| r.phase == Phase::InLine).count();
        Load { running: active.len() - in_line, in_line, waiting, most }
    }

    fn flight(&self) -> MutexGuard<'_, Flight> {
        self.flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on no turn answering messages starts: those messages stay in
    /// the journal, unanswered, for the next start. Turns under way go on.
    pub fn drain(&self) {
        self.flight().draining = true;
    }

    /// Whether the daemon is stopping (no new turn starts).
    pub fn draining(&self) -> bool {
        self.flight().draining
    }

    /// A turn starts, counted until the guard drops; `None` when stopping and
    /// the turn answers messages (`resumes`: it continues a decided approval,
    /// which nothing would resume later, so it runs).
    pub fn start(&self, resumes: bool) -> Option<UnderWay> {
        let mut flight = self.flight();
        if flight.draining && !resumes {
            return None;
        }
        flight.under_way += 1;
        Some(UnderWay { flight: self.flight.clone() })
    }

    /// Turns under way that are not waiting for a person.
    pub fn working(&self) -> usize {
        let asking = self.active().values().filter(|r| r.phase == Phase::Asking).count();
        self.flight().under_way.saturating_sub(asking)
    }

    /// Where the conversation's turn is now.
    pub(super) fn set_phase(&self, conversation: &str, phase: Phase) {
        if let Some(running) = self.active().get_mut(conversation) {
            running.phase = phase;
        }
    }

    fn active(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_active(&self, conversation: &str, running: Option<Running>) {
        match running {
            Some(r) => self.active().insert(conversation.to_string(), r),
            None => self.active().remove(conversation),
        };
    }

    /// Cancels the conversation's running turn (which denies its pending approval),
    /// or the one waiting in line for a place, for the person it answers or an
    /// admin; others are told no.
    pub fn cancel(&self, conversation: &str, by: &str, tier: Tier) -> Cancel {
        match self.active().get(conversation) {
            None => Cancel::NothingRunning,
            Some(r) if tier == Tier::Admin || r.senders.iter().any(|s| s == by) => {
                r.cancel.cancel();
                Cancel::Cancelled
            }
            Some(_) => Cancel::NotYours,
        }
    }

    /// Continues a conversation whose approval was decided when no turn in this
    /// process waited for it (it was asked before a restart), in `chat`, as the
    /// person who asked.
    pub fn resume(&self, approval: &ApprovalRecord, chat: ChatKey) {
        let requester = approval.requester.clone().unwrap_or_default();
        let sender = Sender { id: requester, name: String::new(), is_bot: false };
        let senders = vec![sender.id.clone()];
        self.queue(TurnJob {
            chat,
            sender,
            // As the person who asked was judged then (a record from before tiers: a guest).
            tier: approval.requester_tier.unwrap_or(Tier::Guest),
            in_group: approval.in_group,
            conversation_id: approval.conversation_id.clone(),
            earlier: Vec::new(),
            input: None,
            event_ids: Vec::new(),
            senders,
            reply_to: None,
            interaction: None,
            closes: Vec::new(),
        });
    }
}
