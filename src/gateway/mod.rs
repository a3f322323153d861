//! The gateway between chat platforms and the agent: every inbound event is journaled
//! before the platform is acknowledged, judged (access, group gating), answered as a
//! command or routed to its conversation's queue, and answered through the outbox.
//! Channel-neutral: adapters only implement `Channel`.

mod access;
mod commands;
mod journal;
mod operator;
mod outbox;
mod queue;
mod router;
mod turn;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_channel_core::{
    Channel, ChatKey, Click, Inbound, InboundEvent, InboundKind, InboundSink, Outbound, Sender, SentRef,
};
use tokio_util::sync::CancellationToken;

pub use access::{Access, ChannelAccess, PairingRequest};
pub use commands::COMMANDS;
use journal::{decode, encode, Journal};
pub use operator::Operator;
use outbox::Outbox;
use queue::Queues;
use router::Router;
use turn::TurnJob;

use crate::agent::{AgentBackend, UserInput};
use crate::config::Settings;
use crate::policy::approvals::{outcome_text, DecideError, Decider};
use crate::store::{blocking, ApprovalRecord, Store};

const PROMPTS: &str = "approval-prompts";
/// Who decides from the command line.
pub const OPERATOR: &str = "console";
/// Answered events are forgotten after a day; platforms redeliver within minutes.
const JOURNAL_RETENTION_MS: u64 = 24 * 3600 * 1000;
const OUTBOX_RETRY_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<GatewayInner>,
}

pub struct GatewayInner {
    backend: Arc<dyn AgentBackend>,
    store: Arc<dyn Store>,
    journal: Journal,
    outbox: Outbox,
    access: Access,
    router: Router,
    queues: Queues,
    rules: HashMap<String, ChannelAccess>,
    edit_interval: Duration,
    default_model: String,
    channels: RwLock<HashMap<String, Arc<dyn Channel>>>,
    active: Mutex<HashMap<String, CancellationToken>>,
    /// Per chat: the earliest moment for the next streaming edit or paced send.
    next_send: Mutex<HashMap<String, Instant>>,
    /// Outbox items being delivered right now (by a turn or the retry loop).
    outbox_busy: Mutex<std::collections::HashSet<u64>>,
    maintenance: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Display names of people who decided approvals (ids are for machines).
    names: Mutex<HashMap<String, String>>,
}

/// Where an approval prompt was shown, to update it when the request ends.
#[derive(Serialize, Deserialize)]
struct PromptRecord {
    chat: ChatKey,
    sent: SentRef,
}

impl Gateway {
    pub fn new(backend: Arc<dyn AgentBackend>, store: Arc<dyn Store>, settings: &Settings) -> Gateway {
        let mut rules = HashMap::new();
        rules.insert("telegram".to_string(), ChannelAccess::telegram(&settings.telegram));
        Gateway {
            inner: Arc::new(GatewayInner {
                journal: Journal::new(store.clone()),
                outbox: Outbox::new(store.clone()),
                access: Access::new(store.clone()),
                router: Router::new(store.clone(), backend.clone(), settings.gateway.clone()),
                queues: Queues::default(),
                rules,
                edit_interval: Duration::from_millis(settings.gateway.edit_interval_ms),
                default_model: settings.llm.model.clone(),
                channels: RwLock::default(),
                active: Mutex::default(),
                next_send: Mutex::default(),
                outbox_busy: Mutex::default(),
                maintenance: Mutex::default(),
                names: Mutex::default(),
                backend,
                store,
            }),
        }
    }

    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// Starts a channel. Before it receives anything new, what the last run left
    /// unfinished is finished: undelivered replies and unanswered messages.
    pub async fn start(&self, channel: Arc<dyn Channel>) -> anyhow::Result<()> {
        let name = channel.name().to_string();
        self.inner.channels.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), channel.clone());
        self.recover(&name).await?;
        channel.start(Arc::new(self.clone())).await?;
        let mut maintenance = self.inner.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        if maintenance.is_none() {
            *maintenance = Some(tokio::spawn(self.inner.clone().maintain()));
        }
        tracing::info!(channel = %name, "channel started");
        Ok(())
    }

    pub async fn stop(&self) {
        if let Some(task) = self.inner.maintenance.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        let channels: Vec<Arc<dyn Channel>> =
            self.inner.channels.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for c in channels {
            c.stop().await;
        }
    }

    async fn recover(&self, channel_name: &str) -> anyhow::Result<()> {
        let gw = &self.inner;
        let pruned = gw.journal.prune(JOURNAL_RETENTION_MS).await?;
        let Some(channel) = gw.channel(channel_name) else { return Ok(()) };
        for item in gw.outbox.pending().await?.into_iter().filter(|i| i.chat.channel == channel_name) {
            gw.outbox.deliver(&*channel, item).await?;
        }
        let unfinished: Vec<_> =
            gw.journal.unfinished().await?.into_iter().filter(|r| event_channel(&r.event) == channel_name).collect();
        if !unfinished.is_empty() || pruned > 0 {
            tracing::info!(replayed = unfinished.len(), pruned, "journal recovered");
        }
        for record in unfinished {
            self.dispatch(record.event).await;
        }
        Ok(())
    }

    /// Judges and routes one journaled event. Turns are queued, not awaited.
    async fn dispatch(&self, event: InboundEvent) {
        let gw = self.inner.clone();
        match event.kind {
            InboundKind::Click(click) => {
                tokio::spawn(async move {
                    gw.click(&click).await;
                    let _ = gw.journal.done(&event.event_id).await;
                });
            }
            InboundKind::Message(message) => gw.message(message, event.event_id).await,
        }
    }
}

fn event_channel(event: &InboundEvent) -> &str {
    match &event.kind {
        InboundKind::Message(m) => &m.chat.channel,
        InboundKind::Click(c) => &c.chat.channel,
    }
}

#[async_trait]
impl InboundSink for Gateway {
    async fn deliver(&self, event: InboundEvent) -> Result<(), String> {
        match self.inner.journal.record(&event).await {
            Ok(true) => {
                self.dispatch(event).await;
                Ok(())
            }
            Ok(false) => Ok(()), // Seen before: acknowledged, not processed twice.
            Err(e) => {
                tracing::error!(error = %e, "cannot journal an inbound event");
                Err("journal unavailable".into())
            }
        }
    }
}

impl GatewayInner {
    fn channel(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.channels.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    fn is_admin(&self, message: &Inbound) -> bool {
        self.rules.get(&message.chat.channel).is_some_and(|r| r.is_admin(&message.sender.id))
    }

    async fn message(self: &Arc<Self>, message: Inbound, event_id: String) {
        let Some(rules) = self.rules.get(&message.chat.channel) else { return };
        let verdict = match self.access.judge(rules, &message).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot check access");
                return;
            }
        };
        let input_id = format!("msg-{}", event_id.replace([':', '/'], "-"));
        match verdict {
            access::Verdict::Refuse(reply) => {
                tracing::info!(chat = %message.chat.id(), sender = %message.sender.id, "message refused");
                match reply {
                    Some(text) => self.reply(&message, text, Some(&event_id)).await,
                    None => {
                        let _ = self.journal.done(&event_id).await;
                    }
                }
            }
            access::Verdict::Listen => {
                // Queued like a turn: it must not wait here (the platform is not
                // acknowledged until this returns), and it keeps the conversation's order.
                let route = match self.router.route(&message.chat).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot route a listened message");
                        return;
                    }
                };
                let gw = self.clone();
                let input = UserInput { text: attributed(&message), id: Some(input_id) };
                let conversation = route.conversation_id.clone();
                self.queues.push(
                    &route.conversation_id,
                    Box::pin(async move {
                        if let Err(e) = gw.backend.record_message(&conversation, input).await {
                            tracing::error!(error = %e, "cannot record a listened message");
                        }
                        let _ = gw.journal.done(&event_id).await;
                    }),
                );
            }
            access::Verdict::Answer => {
                if let Some((command, args)) = commands::parse(&message.text) {
                    // Handled here, in arrival order (a /new must take effect before
                    // the next message is routed); the reply is stored before this returns.
                    let text = commands::handle(self, &message, command, &args).await;
                    self.reply(&message, text, Some(&event_id)).await;
                    return;
                }
                let route = match self.router.route(&message.chat).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot route a message");
                        let text = "Something went wrong on my side; please try again.".to_string();
                        self.reply(&message, text, Some(&event_id)).await;
                        return;
                    }
                };
                let job = TurnJob {
                    chat: message.chat.clone(),
                    sender: message.sender.clone(),
                    is_admin: self.is_admin(&message),
                    conversation_id: route.conversation_id.clone(),
                    input: Some(UserInput { text: attributed(&message), id: Some(input_id) }),
                    event_id: Some(event_id),
                    reply_to: (message.kind == switchboard_channel_core::ChatKind::Group)
                        .then(|| message.message_id.clone()),
                };
                self.queues.push(&route.conversation_id, Box::pin(turn::run(self.clone(), job)));
            }
        }
    }

    /// A button press on an approval prompt.
    async fn click(self: &Arc<Self>, click: &Click) {
        let Some(channel) = self.channel(&click.chat.channel) else { return };
        let Some((choice, approval_id)) = turn::parse_button(&click.data) else {
            let _ = channel.answer_click(&click.callback_id, Some(&DecideError::NotPending.to_string()), true).await;
            return;
        };
        let decider = Decider { id: click.sender.id.clone(), operator: false };
        self.remember_name(&click.sender);
        match self.backend.decide_approval(approval_id, &decider, choice, None).await {
            Ok(decided) => {
                let _ = channel.answer_click(&click.callback_id, None, false).await;
                let a = &decided.approval;
                if !decided.waiter_woken {
                    // Asked before a restart: nobody here is waiting, so update the
                    // prompt and finish the turn now.
                    self.resolve_prompt(&a.id, a.state.as_str(), Some(&click.sender.id)).await;
                    self.resume_after_restart(a, &click.chat, &click.sender).await;
                }
            }
            Err(e @ (DecideError::NotEntitled | DecideError::NotPending)) => {
                let _ = channel.answer_click(&click.callback_id, Some(&e.to_string()), true).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record a decision");
                let _ = channel
                    .answer_click(&click.callback_id, Some("Something went wrong; please try again."), true)
                    .await;
            }
        }
    }

    /// Continues a turn whose approval was decided after the process that asked died,
    /// in the chat that asked (or `chat`, where the decision came from).
    async fn resume_after_restart(self: &Arc<Self>, approval: &ApprovalRecord, chat: &ChatKey, by: &Sender) {
        let chat = match self.prompt(&approval.id).await {
            Some(p) => p.chat,
            None => chat.clone(),
        };
        let mut sender = by.clone();
        if let Some(requester) = &approval.requester {
            sender.id = requester.clone();
        }
        let job = TurnJob {
            chat,
            is_admin: false,
            sender,
            conversation_id: approval.conversation_id.clone(),
            input: None,
            event_id: None,
            reply_to: None,
        };
        self.queues.push(&approval.conversation_id, Box::pin(turn::run(self.clone(), job)));
    }

    /// A direct reply (commands, refusals). Stored in the outbox and the event marked
    /// answered before anything is sent, then sent in the background: a crash can
    /// neither lose the reply nor answer the event twice.
    async fn reply(self: &Arc<Self>, to: &Inbound, text: String, event_id: Option<&str>) {
        let reply_to = (to.kind == switchboard_channel_core::ChatKind::Group).then(|| to.message_id.clone());
        match self.outbox.enqueue(to.chat.clone(), Outbound { text, reply_to }, None).await {
            Ok(item) => {
                if let Some(id) = event_id {
                    let _ = self.journal.done(id).await;
                }
                let gw = self.clone();
                tokio::spawn(async move { gw.deliver_item(item).await });
            }
            Err(e) => tracing::error!(error = %e, "cannot store a reply"),
        }
    }

    /// Delivers one outbox item unless it is already being delivered.
    async fn deliver_item(&self, item: outbox::OutboxItem) {
        let Some(channel) = self.channel(&item.chat.channel) else { return };
        if !self.outbox_busy.lock().unwrap_or_else(|p| p.into_inner()).insert(item.seq) {
            return;
        }
        let seq = item.seq;
        if let Err(e) = self.outbox.deliver(&*channel, item).await {
            tracing::error!(error = %e, "cannot update the outbox");
        }
        self.outbox_busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&seq);
    }

    /// Retries replies a platform did not take yet, oldest first, and forgets old
    /// journal entries, for as long as the daemon runs.
    async fn maintain(self: Arc<Self>) {
        let mut last_prune = Instant::now();
        loop {
            tokio::time::sleep(OUTBOX_RETRY_EVERY).await;
            if let Ok(items) = self.outbox.pending().await {
                for item in items {
                    self.deliver_item(item).await;
                }
            }
            if last_prune.elapsed() > Duration::from_secs(3600) {
                let _ = self.journal.prune(JOURNAL_RETENTION_MS).await;
                last_prune = Instant::now();
            }
        }
    }

    fn set_active(&self, conversation: &str, cancel: Option<CancellationToken>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match cancel {
            Some(c) => active.insert(conversation.to_string(), c),
            None => active.remove(conversation),
        };
    }

    /// Cancels the conversation's running turn (which denies its pending approval).
    fn cancel_active(&self, conversation: &str) -> bool {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.get(conversation).map(|c| c.cancel()).is_some()
    }

    /// Pacing of streaming edits: at most one per interval per chat, and none while
    /// the platform has asked us to wait.
    fn edit_allowed(&self, chat: &ChatKey) -> bool {
        let mut next = self.next_send.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Per whole chat: forum topics share the platform's limit. Entries in the
        // past are dropped now and then, so the map stays small.
        if next.len() > 1024 {
            next.retain(|_, at| *at > now);
        }
        match next.get(&chat.chat_id()) {
            Some(at) if now < *at => false,
            _ => {
                next.insert(chat.chat_id(), now + self.edit_interval);
                true
            }
        }
    }

    /// Whether the chat's next streaming edit is due (without taking the slot).
    fn edit_due(&self, chat: &ChatKey) -> bool {
        let next = self.next_send.lock().unwrap_or_else(|p| p.into_inner());
        next.get(&chat.chat_id()).is_none_or(|at| Instant::now() >= *at)
    }

    /// The platform said "retry after": nothing more to this chat until then.
    fn rate_limited(&self, chat: &ChatKey, wait: Duration) {
        let mut next = self.next_send.lock().unwrap_or_else(|p| p.into_inner());
        next.insert(chat.chat_id(), Instant::now() + wait);
    }

    /// Waits for the chat's next slot (the final reply keeps the pace of the edits).
    async fn wait_for_slot(&self, chat: &ChatKey) {
        let at = self.next_send.lock().unwrap_or_else(|p| p.into_inner()).get(&chat.chat_id()).copied();
        if let Some(at) = at {
            tokio::time::sleep_until(at.into()).await;
        }
        let mut next = self.next_send.lock().unwrap_or_else(|p| p.into_inner());
        next.insert(chat.chat_id(), Instant::now() + self.edit_interval);
    }

    async fn remember_prompt(&self, approval_id: &str, chat: &ChatKey, sent: &SentRef) {
        let record = PromptRecord { chat: chat.clone(), sent: sent.clone() };
        let key = approval_id.to_string();
        if let Err(e) = blocking(&self.store, move |s| s.kv_put(PROMPTS, &key, &encode(&record))).await {
            tracing::error!(error = %e, "cannot remember an approval prompt");
        }
    }

    pub(crate) async fn prompt_shown(&self, approval_id: &str) -> bool {
        self.prompt(approval_id).await.is_some()
    }

    async fn prompt(&self, approval_id: &str) -> Option<PromptRecord> {
        let key = approval_id.to_string();
        blocking(&self.store, move |s| s.kv_get(PROMPTS, &key)).await.ok().flatten().and_then(|b| decode(&b))
    }

    /// Replaces a prompt's buttons with how it ended.
    async fn resolve_prompt(&self, approval_id: &str, outcome: &str, decided_by: Option<&str>) {
        let Some(prompt) = self.prompt(approval_id).await else { return };
        let Some(channel) = self.channel(&prompt.chat.channel) else { return };
        let by = decided_by.map(|d| self.display_name(d));
        let text = outcome_text(outcome, by.as_deref());
        if let Err(e) = channel.resolve_approval(&prompt.chat, &prompt.sent, &text).await {
            tracing::warn!(error = %e, "could not update an approval prompt");
        }
        let key = approval_id.to_string();
        let _ = blocking(&self.store, move |s| s.kv_remove(PROMPTS, &key)).await;
    }

    pub(crate) fn remember_name(&self, sender: &Sender) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() > 10_000 {
            names.clear();
        }
        names.insert(sender.id.clone(), sender.name.clone());
    }

    /// The name of whoever decided, as people know them.
    fn display_name(&self, id: &str) -> String {
        if let Some(name) = self.names.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return name.clone();
        }
        match id.split_once(':') {
            Some((_, rest)) if rest.chars().all(|c| c.is_ascii_digit()) => format!("user {rest}"),
            _ => id.to_string(),
        }
    }
}

/// In groups the agent needs to know who is speaking.
fn attributed(message: &Inbound) -> String {
    match message.kind {
        switchboard_channel_core::ChatKind::Group => format!("{}: {}", message.sender.name, message.text),
        switchboard_channel_core::ChatKind::Direct => message.text.clone(),
    }
}
