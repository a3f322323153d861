//! Runs one agent turn for a chat: typing while it works, the reply streamed into one
//! message (paced, never an identical edit), approval requests as buttons, and the
//! final reply through the outbox. People see short human messages, never errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_channel_core::markdown::parse;
use switchboard_channel_core::split::split;
use switchboard_channel_core::{ApprovalPrompt, Channel, ChannelError, ChatKey, Outbound, Sender, SentRef};

use super::GatewayInner;
use crate::agent::{ErrorKind, SdkMessage, SessionOptions, StopReason, StreamDelta, TurnResult, UserInput};
use crate::policy::approvals::{request_text, Choice};
use crate::store::{text_of, MessageBody};

const TYPING_EVERY: Duration = Duration::from_secs(4);

pub struct TurnJob {
    pub chat: ChatKey,
    pub sender: Sender,
    pub is_admin: bool,
    pub conversation_id: String,
    /// `None` resumes the conversation's unfinished turn (after an approval decided
    /// once the process that asked had restarted).
    pub input: Option<UserInput>,
    /// The journal event this turn answers.
    pub event_id: Option<String>,
    pub reply_to: Option<String>,
}

pub async fn run(gw: Arc<GatewayInner>, job: TurnJob) {
    let Some(channel) = gw.channel(&job.chat.channel) else {
        tracing::error!(channel = %job.chat.channel, "no such channel");
        return;
    };
    let options = SessionOptions {
        chat: Some(job.chat.id()),
        sender: Some(job.sender.id.clone()),
        sender_is_admin: job.is_admin,
        can_use_tool: None,
    };
    let mut session = match gw.backend.resume_session(&job.conversation_id, options).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the conversation");
            return finish(&gw, &job, None, "Something went wrong on my side; please try again.".into()).await;
        }
    };
    let started = match job.input.clone() {
        Some(input) => session.send_input(input),
        None => session.resume(),
    };
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the turn");
        return finish(&gw, &job, None, "Something went wrong on my side; please try again.".into()).await;
    }
    gw.set_active(&job.conversation_id, Some(session.canceller()));
    let mut typing = Some(spawn_typing(channel.clone(), job.chat.clone()));

    let mut stream = Stream::new(&gw, channel.clone(), &job).await;
    let mut result = None;
    while let Some(message) = session.next().await {
        match message {
            SdkMessage::StreamEvent { event: StreamDelta::Text(delta) } => {
                stream.current.push_str(&delta);
                stream.show().await;
            }
            SdkMessage::Assistant { content } => {
                stream.texts.push(content);
                stream.current.clear();
            }
            SdkMessage::ApprovalRequest { approval_id, summary, .. } => {
                // Not "typing" while the turn waits for a person.
                if let Some(t) = typing.take() {
                    t.abort();
                }
                show_approval(&gw, &*channel, &job.chat, &approval_id, &summary).await;
            }
            SdkMessage::ApprovalResolved { approval_id, outcome, decided_by, .. } => {
                gw.resolve_prompt(&approval_id, &outcome, decided_by.as_deref()).await;
                typing.get_or_insert_with(|| spawn_typing(channel.clone(), job.chat.clone()));
            }
            SdkMessage::Result(r) => result = Some(r),
            _ => {}
        }
    }
    if let Some(t) = typing {
        t.abort();
    }
    gw.set_active(&job.conversation_id, None);
    let mut text = final_text(&stream.texts, result.as_ref());
    if text.is_empty() && result.as_ref().is_some_and(|r| r.success) {
        // A replay whose reply was generated before the crash but never stored for
        // sending: send what the transcript holds.
        text = recorded_reply(&gw, &job).await.unwrap_or_default();
        // A message always gets an answer, even when the model said nothing.
        if text.is_empty() && job.input.is_some() {
            text = "_The agent finished without a reply._".into();
        }
    }
    if stream.shows_exactly(&text) {
        // Already on screen as the one streamed message: nothing left to send.
        if let Some(event) = &job.event_id {
            let _ = gw.journal.done(event).await;
        }
        return;
    }
    let streamed = stream.message.clone();
    finish(&gw, &job, streamed, text).await;
}

/// The assistant's words after the job's input in the transcript, if any.
async fn recorded_reply(gw: &GatewayInner, job: &TurnJob) -> Option<String> {
    let input_id = job.input.as_ref()?.id.clone()?;
    let entries = gw.backend.export_conversation(&job.conversation_id).await.ok()?;
    let at = entries.iter().position(|e| e.id() == input_id)?;
    let said: Vec<String> = entries[at + 1..]
        .iter()
        .filter_map(|e| match &e.msg.body {
            MessageBody::Assistant { content, .. } => Some(text_of(content)),
            _ => None,
        })
        .filter(|t| !t.trim().is_empty())
        .collect();
    (!said.is_empty()).then(|| said.join("\n\n"))
}

/// Stores the reply in the outbox, marks the event answered, then delivers.
async fn finish(gw: &GatewayInner, job: &TurnJob, streamed: Option<SentRef>, text: String) {
    if text.trim().is_empty() {
        if let Some(event) = &job.event_id {
            let _ = gw.journal.done(event).await;
        }
        return;
    }
    let message = Outbound { text, reply_to: job.reply_to.clone() };
    let item = match gw.outbox.enqueue(job.chat.clone(), message, streamed).await {
        Ok(item) => item,
        Err(e) => {
            tracing::error!(error = %e, "cannot store the reply");
            return;
        }
    };
    if let Some(event) = &job.event_id {
        if let Err(e) = gw.journal.done(event).await {
            tracing::error!(error = %e, "cannot mark the message answered");
        }
    }
    gw.wait_for_slot(&job.chat).await;
    gw.deliver_item(item).await;
}

/// Everything the agent said this turn; for failures a short human line instead.
fn final_text(texts: &[String], result: Option<&TurnResult>) -> String {
    let said = texts.join("\n\n");
    let Some(r) = result else { return "Something went wrong on my side; please try again.".into() };
    match (r.stop_reason, r.error_kind) {
        (StopReason::Error, kind) => {
            let human = match kind {
                Some(ErrorKind::Model) => "The model did not answer; please try again in a moment.",
                _ => "Something went wrong on my side; please try again.",
            };
            if said.is_empty() {
                human.into()
            } else {
                format!("{said}\n\n_{human}_")
            }
        }
        (StopReason::Cancelled, _) if said.is_empty() => String::new(),
        (StopReason::MaxSteps, _) => {
            let note = "I stopped because this took too many steps. Say \"continue\" to let me go on.";
            if said.is_empty() {
                note.into()
            } else {
                format!("{said}\n\n_{note}_")
            }
        }
        _ => said,
    }
}

/// The reply as it streams: one message, edited at most once per interval per chat.
struct Stream<'a> {
    gw: &'a GatewayInner,
    channel: Arc<dyn Channel>,
    chat: ChatKey,
    event_id: Option<String>,
    reply_to: Option<String>,
    texts: Vec<String>,
    current: String,
    message: Option<SentRef>,
    shown: String,
    /// Streaming starts one interval into the turn: a quick reply arrives whole, as
    /// one message, instead of a fragment and an edit.
    not_before: Instant,
}

impl<'a> Stream<'a> {
    async fn new(gw: &'a GatewayInner, channel: Arc<dyn Channel>, job: &TurnJob) -> Stream<'a> {
        // A replayed event continues the message its first attempt streamed into.
        let message = match &job.event_id {
            Some(id) => gw.journal.get(id).await.ok().flatten().and_then(|r| r.stream_message),
            None => None,
        };
        Stream {
            gw,
            channel,
            chat: job.chat.clone(),
            event_id: job.event_id.clone(),
            reply_to: job.reply_to.clone(),
            texts: Vec::new(),
            current: String::new(),
            message,
            shown: String::new(),
            not_before: Instant::now() + gw.edit_interval,
        }
    }

    /// Whether the streamed message already shows exactly `text`, whole.
    fn shows_exactly(&self, text: &str) -> bool {
        if self.message.is_none() || text.trim().is_empty() {
            return false;
        }
        let caps = self.channel.capabilities();
        let parts = split(&parse(text.trim()), caps.max_message_len, caps.measure);
        parts.len() == 1 && switchboard_channel_core::markdown::to_plain(&parts[0]) == self.shown
    }

    async fn show(&mut self) {
        let caps = self.channel.capabilities();
        // Cheap checks first: rendering the whole reply on every delta of a long
        // answer would be quadratic, and most deltas fall between edits.
        if !caps.can_edit || Instant::now() < self.not_before || !self.gw.edit_due(&self.chat) {
            return;
        }
        let mut all = self.texts.clone();
        all.push(self.current.clone());
        let text = all.join("\n\n");
        // While streaming, show what fits one message; the final reply adds the rest.
        let Some(first) = split(&parse(text.trim()), caps.max_message_len, caps.measure).into_iter().next() else {
            return;
        };
        let shown = switchboard_channel_core::markdown::to_plain(&first);
        if shown == self.shown || !self.gw.edit_allowed(&self.chat) {
            return;
        }
        let outcome = match &self.message {
            None => self.channel.send(&self.chat, &first, self.reply_to.as_deref()).await.map(Some),
            Some(sent) => self.channel.edit(&self.chat, sent, &first).await.map(|_| None),
        };
        match outcome {
            Ok(Some(sent)) => {
                if let Some(event) = &self.event_id {
                    let _ = self.gw.journal.set_stream_message(event, sent.clone()).await;
                }
                self.message = Some(sent);
                self.shown = shown;
            }
            Ok(None) => self.shown = shown,
            // Skipped; the next delta or the final reply catches up.
            Err(ChannelError::RateLimited(wait)) => self.gw.rate_limited(&self.chat, wait),
            Err(ChannelError::Transient(_)) => {}
            Err(ChannelError::Rejected(why)) => {
                tracing::debug!(reason = %why, "streaming edit refused; the final reply will be sent anew");
                self.message = None;
            }
        }
    }
}

async fn show_approval(gw: &GatewayInner, channel: &dyn Channel, chat: &ChatKey, approval_id: &str, summary: &str) {
    // A replayed turn asks again about the same request; its buttons are still there.
    if gw.prompt_shown(approval_id).await {
        return;
    }
    let prompt = ApprovalPrompt {
        text: request_text(summary),
        buttons: Choice::ALL.iter().map(|c| (c.label().to_string(), button_data(*c, approval_id))).collect(),
    };
    match super::outbox::with_retries(|| channel.show_approval(chat, &prompt)).await {
        Ok(sent) => gw.remember_prompt(approval_id, chat, &sent).await,
        Err(e) => tracing::error!(error = %e, "could not show an approval prompt"),
    }
}

/// Button data: `apr:<choice>:<approval id>`; only the store gives it meaning.
pub fn button_data(choice: Choice, approval_id: &str) -> String {
    format!("apr:{}:{approval_id}", choice.code())
}

pub fn parse_button(data: &str) -> Option<(Choice, &str)> {
    let (code, id) = data.strip_prefix("apr:")?.split_once(':')?;
    let choice = Choice::parse(code)?;
    id.starts_with("apr-").then_some((choice, id))
}

fn spawn_typing(channel: Arc<dyn Channel>, chat: ChatKey) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        // Bounded, in case a turn hangs.
        while started.elapsed() < Duration::from_secs(600) {
            let _ = channel.typing(&chat).await;
            tokio::time::sleep(TYPING_EVERY).await;
        }
    })
}
