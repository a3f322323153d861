//! An in-memory channel for gateway tests, and a recording sink for adapter tests.
//!
//! [`FakeChannel`] implements the `Channel` contract without a platform: a test
//! injects messages, commands and clicks (each delivered to the gateway's sink
//! the way an adapter would, with the time `deliver` took), and inspects every
//! message the gateway sent, edited, prompted or resolved. Failures can be
//! injected per operation, and sends can be stalled to show that one stuck
//! channel does not hold up another. Its `[fake]` settings section
//! ([`DESCRIPTOR`]) lets the daemon's configuration loader start it like any
//! other channel.

mod settings;
mod sink;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_channel_core::markdown::{to_plain, Block};
use switchboard_channel_core::{
    ApprovalPrompt, Capabilities, Channel, ChannelError, ChatKey, ChatKind, Click, Command, DeliverError, Inbound,
    InboundEvent, InboundKind, InboundSink, Ingress, Interaction, LengthUnit, SendOptions, Sender, SentRef,
};

pub use settings::DESCRIPTOR;
pub use sink::{RecordingSink, SINK_WAIT};

/// The bot account of every fake chat key.
pub const ACCOUNT: &str = "fakebot";

/// What the gateway can ask a channel to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `send`
    Send,
    /// `edit`
    Edit,
    /// `typing`
    Typing,
    /// `show_approval`
    ShowApproval,
    /// `resolve_approval`
    ResolveApproval,
    /// `close_interaction`
    CloseInteraction,
    /// `open_direct`
    OpenDirect,
}

/// One call the gateway made, successful or not.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which operation.
    pub op: Op,
    /// The chat it was for (`None` for `open_direct`).
    pub chat: Option<ChatKey>,
    /// Its text, plain, if it had one.
    pub text: Option<String>,
    /// When it was made.
    pub at: Instant,
    /// Whether an injected failure answered it.
    pub failed: bool,
}

/// A message the bot sent, as it looks now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// Its id (the `SentRef`).
    pub id: String,
    /// Where it was sent.
    pub chat: ChatKey,
    /// Its current text, plain.
    pub text: String,
    /// Earlier texts, oldest first.
    pub edits: Vec<String>,
    /// Buttons still under it: (label, data).
    pub buttons: Vec<(String, String)>,
    /// How it was sent.
    pub options: SendOptions,
}

/// An interaction the gateway closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Which interaction.
    pub interaction: Interaction,
    /// The notice shown to the person, if any.
    pub notice: Option<String>,
}

#[derive(Default)]
struct State {
    next_message: u64,
    next_event: u64,
    messages: BTreeMap<u64, FakeMessage>,
    calls: Vec<Call>,
    closed: Vec<Closed>,
    failures: VecDeque<(Op, ChannelError)>,
    /// Calls whose message is made but whose answer never comes back.
    lost_answers: Vec<Op>,
    acks: Vec<Duration>,
}

struct Inner {
    name: String,
    capabilities: Capabilities,
    /// The gateway's sink and the runtime the channel was started on: deliveries
    /// run there, as a real adapter's receive loop does.
    sink: Mutex<Option<(Arc<dyn InboundSink>, tokio::runtime::Handle)>>,
    state: Mutex<State>,
    /// While stalled, sends and edits wait for the gate to open.
    gate: tokio::sync::watch::Sender<bool>,
}

/// A channel held in memory; clones share it.
#[derive(Clone)]
pub struct FakeChannel {
    inner: Arc<Inner>,
}

/// What a delivery returned and how long the sink took.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The event's id.
    pub event_id: String,
    /// The time `deliver` took: the acknowledgement latency.
    pub took: Duration,
    /// What the sink said.
    pub result: Result<(), DeliverError>,
}

impl FakeChannel {
    /// A channel named `name` with [`FakeChannel::default_capabilities`].
    pub fn new(name: &str) -> FakeChannel {
        FakeChannel::with_capabilities(name, FakeChannel::default_capabilities())
    }

    /// Editable, with buttons, ephemeral messages and direct chats; 2,000
    /// characters; edits at most every 300 ms.
    pub fn default_capabilities() -> Capabilities {
        Capabilities {
            max_message_len: 2000,
            length_unit: LengthUnit::Chars,
            can_edit: true,
            min_edit_interval: Duration::from_millis(300),
            typing_lasts: Some(Duration::from_secs(2)),
            buttons: true,
            ephemeral: true,
            direct_chats: true,
        }
    }

    /// A channel with the given capabilities.
    pub fn with_capabilities(name: &str, capabilities: Capabilities) -> FakeChannel {
        let (gate, _) = tokio::sync::watch::channel(false);
        FakeChannel {
            inner: Arc::new(Inner {
                name: name.to_string(),
                capabilities,
                sink: Mutex::default(),
                state: Mutex::default(),
                gate,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- chats and people ----

    /// The key of the direct chat with `user` (its chat id is the user's id).
    pub fn direct(&self, user: &str) -> ChatKey {
        self.key(user, None)
    }

    /// The key of a chat (group, channel) or one of its threads.
    pub fn key(&self, chat: &str, thread: Option<&str>) -> ChatKey {
        ChatKey {
            channel: self.inner.name.clone(),
            account: ACCOUNT.into(),
            chat: chat.into(),
            thread: thread.map(str::to_string),
        }
    }

    /// The sender `user`: id `NAME:user`, display name `User user`.
    pub fn sender(&self, user: &str) -> Sender {
        Sender { id: format!("{}:{user}", self.inner.name), name: format!("User {user}"), is_bot: false }
    }

    // ---- injecting events ----

    fn event_id(&self) -> String {
        let mut state = self.state();
        state.next_event += 1;
        format!("{}:{}:{}", self.inner.name, ACCOUNT, state.next_event)
    }

    /// Delivers `event` to the sink as an adapter would (on the runtime the
    /// channel was started on), timing the call.
    pub async fn deliver(&self, event: InboundEvent) -> Delivered {
        let sink = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (sink, runtime) = sink.expect("the fake channel was not started");
        let event_id = event.event_id.clone();
        let started = Instant::now();
        let result = runtime
            .spawn(async move { sink.deliver(event).await })
            .await
            .unwrap_or_else(|_| Err(DeliverError("the daemon's runtime is gone".into())));
        let took = started.elapsed();
        self.state().acks.push(took);
        Delivered { event_id, took, result }
    }

    /// A message in `chat` from `user`.
    pub fn message(&self, chat: ChatKey, kind: ChatKind, user: &str, text: &str, mentions_bot: bool) -> InboundEvent {
        let event_id = self.event_id();
        let message_id = format!("in-{}", event_id.rsplit(':').next().unwrap_or_default());
        InboundEvent {
            event_id,
            kind: InboundKind::Message(Inbound {
                chat,
                kind,
                sender: self.sender(user),
                text: text.into(),
                mentions_bot,
                reply_to_bot: false,
                message_id,
                timestamp: now_ms(),
                space: None,
                interaction: None,
            }),
        }
    }

    /// `user` writes `text` to the bot directly.
    pub async fn dm(&self, user: &str, text: &str) -> Delivered {
        let event = self.message(self.direct(user), ChatKind::Direct, user, text, false);
        self.deliver(event).await
    }

    /// `user` writes `text` in group `chat`, mentioning the bot or not.
    pub async fn group(&self, chat: &str, user: &str, text: &str, mention: bool) -> Delivered {
        let event = self.message(self.key(chat, None), ChatKind::Group, user, text, mention);
        self.deliver(event).await
    }

    /// `user` invokes slash command `name` in `chat`; the event carries an interaction.
    pub async fn command(&self, chat: ChatKey, kind: ChatKind, user: &str, name: &str, args: &str) -> Delivered {
        let event_id = self.event_id();
        let interaction = Interaction { handle: format!("ix-{event_id}") };
        let command = Command {
            chat,
            kind,
            sender: self.sender(user),
            name: name.into(),
            args: args.into(),
            addressed: true,
            message_id: None,
            interaction: Some(interaction),
            timestamp: now_ms(),
            space: None,
        };
        self.deliver(InboundEvent { event_id, kind: InboundKind::Command(command) }).await
    }

    /// `user` presses the button with `data` under message `message_id`.
    pub async fn click(&self, chat: &ChatKey, user: &str, message_id: &str, data: &str) -> Delivered {
        let event_id = self.event_id();
        let click = Click {
            chat: chat.clone(),
            sender: self.sender(user),
            data: data.into(),
            message_id: message_id.into(),
            interaction: Interaction { handle: format!("ix-{event_id}") },
        };
        self.deliver(InboundEvent { event_id, kind: InboundKind::Click(click) }).await
    }

    /// Presses the button labelled `label` on `message`, as `user`.
    pub async fn press(&self, message: &FakeMessage, user: &str, label: &str) -> Delivered {
        let data = message
            .buttons
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {label:?} button on {message:?}"));
        self.click(&message.chat, user, &message.id, &data).await
    }

    /// Lets go of the gateway's sink, as a connection dies with its process.
    pub fn detach(&self) {
        self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    // ---- failures ----

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: Op, error: ChannelError) {
        self.state().failures.push_back((op, error));
    }

    /// The next call of `op` makes its message, then never answers (the
    /// connection died after the platform acted): the caller waits forever.
    pub fn lose_next_answer(&self, op: Op) {
        self.state().lost_answers.push(op);
    }

    async fn answer_or_hang(&self, op: Op) {
        let lost = {
            let mut state = self.state();
            let at = state.lost_answers.iter().position(|o| *o == op);
            at.map(|i| state.lost_answers.remove(i)).is_some()
        };
        if lost {
            std::future::pending::<()>().await;
        }
    }

    /// While stalled, sends and edits wait (as over a dead connection).
    pub fn stall(&self, stalled: bool) {
        self.inner.gate.send_replace(stalled);
    }

    // ---- inspection ----

    /// Messages the bot sent to `chat` (the chat id, any thread), oldest first.
    pub fn messages_in(&self, chat: &str) -> Vec<FakeMessage> {
        self.state().messages.values().filter(|m| m.chat.chat == chat).cloned().collect()
    }

    /// The texts of those messages.
    pub fn texts_in(&self, chat: &str) -> Vec<String> {
        self.messages_in(chat).into_iter().map(|m| m.text).collect()
    }

    /// The newest message in `chat` that still has buttons.
    pub fn prompt_in(&self, chat: &str) -> Option<FakeMessage> {
        self.messages_in(chat).into_iter().rev().find(|m| !m.buttons.is_empty())
    }

    /// A message by id.
    pub fn message_by_id(&self, id: &str) -> Option<FakeMessage> {
        let id: u64 = id.parse().ok()?;
        self.state().messages.get(&id).cloned()
    }

    /// Every call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Runs `f` on every call so far, in order, without copying them: for a
    /// caller that polls while the gateway works (a benchmark must not take the
    /// CPU it measures).
    pub fn with_calls<R>(&self, f: impl FnOnce(&[Call]) -> R) -> R {
        f(&self.state().calls)
    }

    /// Calls of one operation.
    pub fn calls_of(&self, op: Op) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op == op).collect()
    }

    /// Interactions the gateway closed, in order.
    pub fn closed(&self) -> Vec<Closed> {
        self.state().closed.clone()
    }

    /// How long each delivery took, in order.
    pub fn ack_latencies(&self) -> Vec<Duration> {
        self.state().acks.clone()
    }

    /// Polls `f` until it holds; panics after `timeout` saying `what` was awaited.
    pub async fn wait_until<F: Fn(&FakeChannel) -> bool>(&self, what: &str, timeout: Duration, f: F) {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() > timeout {
                let texts: Vec<String> =
                    self.state().messages.values().map(|m| format!("{}: {}", m.chat.chat, m.text)).collect();
                panic!("timed out after {timeout:?} waiting for {what}; messages so far: {texts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // ---- the channel's side ----

    /// Records the call; an injected failure for `op` answers it instead.
    fn call(&self, op: Op, chat: Option<&ChatKey>, text: Option<String>) -> Result<(), ChannelError> {
        let mut state = self.state();
        let failure = state.failures.iter().position(|(o, _)| *o == op).and_then(|i| state.failures.remove(i));
        state.calls.push(Call { op, chat: chat.cloned(), text, at: Instant::now(), failed: failure.is_some() });
        match failure {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    async fn pass_gate(&self) {
        let mut gate = self.inner.gate.subscribe();
        let _ = gate.wait_for(|stalled| !*stalled).await;
    }

    fn store(&self, chat: &ChatKey, text: String, buttons: Vec<(String, String)>, options: SendOptions) -> SentRef {
        let mut state = self.state();
        state.next_message += 1;
        let id = state.next_message;
        let message = FakeMessage { id: id.to_string(), chat: chat.clone(), text, edits: Vec::new(), buttons, options };
        state.messages.insert(id, message);
        SentRef { message_id: id.to_string() }
    }

    fn update(&self, sent: &SentRef, text: String, keep_buttons: bool) -> Result<(), ChannelError> {
        let id: u64 = sent.message_id.parse().map_err(|_| ChannelError::Rejected("no such message".into()))?;
        let mut state = self.state();
        let message = state.messages.get_mut(&id).ok_or_else(|| ChannelError::Rejected("no such message".into()))?;
        if message.text != text {
            let before = std::mem::replace(&mut message.text, text);
            message.edits.push(before);
        }
        if !keep_buttons {
            message.buttons.clear();
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn check_length(caps: &Capabilities, text: &str) -> Result<(), ChannelError> {
    // Strict where platforms are strict: an over-long part is refused.
    if caps.length_unit.measure(text) > caps.max_message_len {
        return Err(ChannelError::Rejected(format!("message longer than {}", caps.max_message_len)));
    }
    if text.trim().is_empty() {
        return Err(ChannelError::Rejected("empty message".into()));
    }
    Ok(())
}

#[async_trait]
impl Channel for FakeChannel {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities
    }

    fn status(&self) -> String {
        let started = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if started { "fake: connected" } else { "fake: not started" }.into()
    }

    /// Events are handed to it, as a webhook's are: receiving while started.
    fn ingress(&self) -> Ingress {
        let started = self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if started {
            Ingress::Listening
        } else {
            Ingress::Down
        }
    }

    async fn start(&self, sink: Arc<dyn InboundSink>) -> Result<(), ChannelError> {
        let runtime = tokio::runtime::Handle::current();
        *self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some((sink, runtime));
        Ok(())
    }

    async fn stop(&self) {
        self.inner.sink.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError> {
        self.pass_gate().await;
        let text = to_plain(part);
        self.call(Op::Send, Some(chat), Some(text.clone()))?;
        check_length(&self.inner.capabilities, &text)?;
        let sent = self.store(chat, text, Vec::new(), options.clone());
        self.answer_or_hang(Op::Send).await;
        Ok(sent)
    }

    async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        if !self.inner.capabilities.can_edit {
            return Err(ChannelError::Unsupported("edit"));
        }
        self.pass_gate().await;
        let text = to_plain(part);
        self.call(Op::Edit, Some(chat), Some(text.clone()))?;
        check_length(&self.inner.capabilities, &text)?;
        self.update(sent, text, true)?;
        self.answer_or_hang(Op::Edit).await;
        Ok(())
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        self.call(Op::Typing, Some(chat), None)
    }

    async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        if prompt.buttons.is_empty() {
            // As the contract's default: the question and the commands that answer it.
            let mut text = prompt.text.clone();
            for (label, command) in &prompt.commands {
                text.push_str(&format!("\n{label}: {command}"));
            }
            return self.send(chat, &switchboard_channel_core::plain_blocks(&text), &SendOptions::default()).await;
        }
        self.pass_gate().await;
        self.call(Op::ShowApproval, Some(chat), Some(prompt.text.clone()))?;
        let sent = self.store(chat, prompt.text.clone(), prompt.buttons.clone(), SendOptions::default());
        self.answer_or_hang(Op::ShowApproval).await;
        Ok(sent)
    }

    async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        self.call(Op::ResolveApproval, Some(chat), Some(outcome.to_string()))?;
        self.update(sent, outcome.to_string(), false)
    }

    async fn close_interaction(
        &self,
        chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        self.call(Op::CloseInteraction, Some(chat), notice.map(str::to_string))?;
        self.state().closed.push(Closed { interaction: interaction.clone(), notice: notice.map(str::to_string) });
        Ok(())
    }

    async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        self.call(Op::OpenDirect, None, Some(user.to_string()))?;
        let raw = user.strip_prefix(&format!("{}:", self.inner.name)).unwrap_or(user);
        Ok(self.direct(raw))
    }
}
