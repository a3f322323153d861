//! Runs one agent turn for a chat: typing while it works, the reply streamed into
//! one message, approval requests as prompts, and the final reply through the
//! outbox. People see short human messages, never errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use switchboard_channel_core::{Channel, ChatKey, Interaction, Sender};
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbound, Streamed};
use super::places::Place;
use super::prompts::Request;
use super::stream::Stream;
use super::turns::{Phase, Running, Turns};
use super::SOMETHING_WENT_WRONG;
use crate::agent::{
    ErrorKind, RecordedReply, SdkMessage, SessionOptions, StopReason, StreamDelta, TurnResult, UserInput,
};
use crate::metrics::TurnOutcome;
use crate::policy::Tier;

/// A typing indicator is never kept up longer than this, in case a turn hangs.
const TYPING_AT_MOST: Duration = Duration::from_secs(600);

pub struct TurnJob {
    pub chat: ChatKey,
    pub sender: Sender,
    /// The sender's tier: the limit of every tool call of the turn.
    pub tier: Tier,
    /// Whether the chat is shared (a group) rather than the sender's DM.
    pub in_group: bool,
    pub conversation_id: String,
    /// Messages collected before `input`, recorded first, each as its own entry.
    pub earlier: Vec<UserInput>,
    /// `None` resumes the conversation's unfinished turn (after an approval decided
    /// once the process that asked had restarted).
    pub input: Option<UserInput>,
    /// The journal events this turn answers (several when messages were collected).
    pub event_ids: Vec<String>,
    /// Everyone whose message it answers (any of them may `/cancel` it).
    pub senders: Vec<String>,
    pub reply_to: Option<String>,
    /// The interaction the reply answers (a Discord `/ask`): its first part is the
    /// response, later parts continue it.
    pub interaction: Option<Interaction>,
    /// Other interactions of the batch, closed when the turn ends (one reply
    /// answers them all, in `interaction`).
    pub closes: Vec<Interaction>,
}

impl TurnJob {
    /// Every message is sent for the first time ([`UserInput::first`]): no other
    /// attempt can have recorded, streamed or answered any of them, so the
    /// journal and the transcript are not searched for one. Never for a turn
    /// without an input (it resumes one begun before).
    pub fn first(&self) -> bool {
        self.input.as_ref().is_some_and(|input| input.first) && self.earlier.iter().all(|input| input.first)
    }
}

pub async fn run(turns: Turns, job: TurnJob) {
    // With replicas, while no other replica runs a turn of the conversation
    // (none, when stopping first: the events stay journaled for the next holder;
    // a turn continuing a decided approval, which nothing would resume, waits).
    let answers = !job.event_ids.is_empty();
    let Some(hold) = turns.owners.hold_turn(&job.conversation_id, || answers && turns.draining()).await else {
        return;
    };
    run_held(&turns, job, hold.fence()).await;
    // Let go of before the conversation's next turn here claims it again.
    hold.release().await;
}

async fn run_held(turns: &Turns, mut job: TurnJob, fence: Option<crate::store::Lease>) {
    let turns = turns.clone();
    // The conversation's entry among the turns taken up, whatever way this ends.
    let taken_up = TakenUp { turns: turns.clone(), conversation: job.conversation_id.clone() };
    // In line behind the turns already running (`gateway.max_concurrent_turns`),
    // where `/cancel` reaches it too (until the session's own canceller takes over).
    let stop = CancellationToken::new();
    let mut place = wait_in_line(&turns, &job, &stop).await;
    if place.is_some() {
        turns.set_phase(&job.conversation_id, Phase::Working);
    }
    let began = Instant::now();
    let ended = |outcome| crate::metrics::global().turn(outcome, began.elapsed());
    // Stopping: its events stay unanswered in the journal, for the next start.
    let Some(_under_way) = turns.start(job.event_ids.is_empty()) else { return };
    let Some(channel) = turns.registry.channel(&job.chat.channel) else {
        tracing::error!(channel = %job.chat.channel, "no such channel");
        return;
    };
    send_recorded_replies(&turns, &mut job).await;
    if place.is_none() {
        // Cancelled in line: what a run before a crash answered goes out (above,
        // and the last message's reply here); the rest is dropped unread.
        drop(taken_up);
        ended(TurnOutcome::Cancelled);
        let reply = recorded_reply(&turns, &job).await;
        let (text, reply_entry) = reply.map_or((String::new(), None), |r| (r.text, Some(r.entry_id)));
        // An attempt before the crash may have streamed it (noted on the first event).
        let streamed = match job.event_ids.first() {
            Some(first) if reply_entry.is_some() => turns.journal.streamed(first).await,
            _ => None,
        };
        return finish(&turns, &job, streamed, text, reply_entry).await;
    }
    let options = SessionOptions {
        chat: Some(job.chat.id()),
        sender: Some(job.sender.id.clone()),
        tier: job.tier,
        in_group: job.in_group,
        can_use_tool: None,
        workdir: None,
        external_tools: None,
        fence,
    };
    let mut session = match turns.backend.resume_session(&job.conversation_id, options).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the conversation");
            drop((taken_up, place));
            ended(TurnOutcome::Failed);
            return finish(&turns, &job, None, SOMETHING_WENT_WRONG.into(), None).await;
        }
    };
    // Collected messages are recorded by the turn, after the tool calls an
    // earlier turn left unfinished are settled.
    let started = match job.input.clone() {
        Some(input) => session.send_batch(job.earlier.clone(), input),
        None => session.resume(),
    };
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the turn");
        drop((taken_up, place));
        ended(TurnOutcome::Failed);
        return finish(&turns, &job, None, SOMETHING_WENT_WRONG.into(), None).await;
    }
    let cancel = session.canceller();
    let running = Running { cancel: cancel.clone(), senders: job.senders.clone(), phase: Phase::Working };
    turns.set_active(&job.conversation_id, Some(running));
    // A `/cancel` since the turn left the line (both under the same lock as this).
    if stop.is_cancelled() {
        cancel.cancel();
    }
    let mut typing = spawn_typing(channel.clone(), job.chat.clone());

    let mut stream = Stream::new(&turns, channel.clone(), &job).await;
    let mut result = None;
    // Approvals asked and not yet decided: while any waits, the turn's place is free.
    // (`None` also once decided when no place was free.)
    let mut asking = 0usize;
    // The transcript entry of this turn's first words: which reply it sends.
    let mut first_said: Option<String> = None;
    while let Some(message) = session.next().await {
        match message {
            SdkMessage::StreamEvent { event: StreamDelta::Text(delta) } => stream.push(&delta).await,
            SdkMessage::Assistant { content, uuid } => {
                first_said.get_or_insert(uuid);
                stream.said(content)
            }
            SdkMessage::ApprovalRequest { approval_id, summary, complete, .. } => {
                // Not "typing" while the turn waits for a person.
                if let Some(t) = typing.take() {
                    t.abort();
                }
                asking += 1;
                place = None;
                let request = Request {
                    approval_id: &approval_id,
                    summary: &summary,
                    chat: &job.chat,
                    requester: &job.sender.id,
                    requester_tier: job.tier,
                    complete,
                };
                turns.prompts.show(&request).await;
                turns.set_phase(&job.conversation_id, Phase::Asking);
            }
            SdkMessage::ApprovalResolved { approval_id, outcome, decided_by, .. } => {
                asking = asking.saturating_sub(1);
                turns.prompts.resolve(&approval_id, outcome, decided_by.as_deref()).await;
                if asking == 0 {
                    // The agent goes on at once once decided (its session does
                    // not wait for this loop), so the turn takes a place if one
                    // is free and otherwise goes on beyond the limit rather than
                    // hold back what the agent already says.
                    place = place.or_else(|| turns.places.try_take(job.tier));
                    turns.set_phase(&job.conversation_id, Phase::Working);
                }
                if typing.is_none() {
                    typing = spawn_typing(channel.clone(), job.chat.clone());
                }
            }
            SdkMessage::Result(r) => result = Some(r),
            _ => {}
        }
    }
    if let Some(t) = typing {
        t.abort();
    }
    // The agent is done: its place goes to the next turn in line, and its
    // session goes too. Storing and sending the reply, which may wait for the
    // platform's pace or a rate limit, holds neither; the conversation's next
    // turn still waits for it (it runs after this one in the same lane).
    drop((taken_up, place, session));
    if result.is_none() && runtime_going_down() {
        // The agent's turn was dropped before its result (every turn that runs to
        // its end sends one, a failed or panicked one too) because the runtime is
        // going down, while this task still runs for a moment. The events stay
        // unanswered, as a crash leaves them, and are replayed at the next start;
        // telling the person something failed would answer them for good.
        tracing::warn!(conversation = %job.conversation_id, "a turn ended without its result; its messages wait for the next start");
        ended(TurnOutcome::Failed);
        return;
    }
    ended(match result.as_ref().map(|r| r.stop_reason) {
        Some(StopReason::EndTurn) => TurnOutcome::Completed,
        Some(StopReason::Cancelled) => TurnOutcome::Cancelled,
        Some(StopReason::MaxSteps) => TurnOutcome::MaxSteps,
        Some(StopReason::Error) | None => TurnOutcome::Failed,
    });
    let mut text = final_text(stream.texts(), result.as_ref());
    // Which reply this is: the one this turn's words belong to, which an attempt
    // before a crash may have begun (then its earlier words go out too).
    let mut reply_entry = None;
    if let Some(said) = first_said {
        // A first attempt's reply is what it said.
        let recorded = match job.first() {
            true => Ok(None),
            false => turns.backend.reply_of(&job.conversation_id, &said).await,
        };
        match recorded {
            Ok(Some(reply)) => {
                if reply.entry_id != said && result.as_ref().is_some_and(|r| r.success) {
                    text = reply.text;
                }
                reply_entry = Some(reply.entry_id);
            }
            Ok(None) => reply_entry = Some(said),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the reply back");
                reply_entry = Some(said);
            }
        }
    }
    if text.is_empty() && result.as_ref().is_some_and(|r| r.success) {
        // A replay whose reply was generated before the crash but never stored for
        // sending: send what the transcript holds, as that reply (messages recorded
        // back to back share one, and it is sent once).
        let reply = recorded_reply(&turns, &job).await;
        text = reply.as_ref().map(|r| r.text.clone()).unwrap_or_default();
        reply_entry = reply.map(|r| r.entry_id);
        // A message always gets an answer, even when the model said nothing.
        if text.is_empty() && job.input.is_some() {
            text = "_The agent finished without a reply._".into();
        }
    }
    tracing::debug!(conversation = %job.conversation_id, events = ?job.event_ids, reply = ?reply_entry, chars = text.len(), "turn's reply");
    if stream.shows_exactly(&text) {
        // Already on screen as the one streamed message: nothing left to send.
        return turns.delivery.shown(&job.event_ids, reply_entry).await;
    }
    let streamed = stream.streamed();
    finish(&turns, &job, streamed, text, reply_entry).await;
}

/// Collected messages that a run before a crash already answered (their reply in
/// the transcript, maybe never sent): that reply goes out first, for them, and
/// the turn goes on with the rest.
async fn send_recorded_replies(turns: &Turns, job: &mut TurnJob) {
    let mut answered = 0;
    let mut replies: Vec<(usize, RecordedReply)> = Vec::new();
    for (i, input) in job.earlier.iter().enumerate() {
        // Sent for the first time: nothing can have answered it.
        let Some(id) = input.id.as_ref().filter(|_| !input.first) else { continue };
        if let Ok(Some(reply)) = turns.backend.reply_after(&job.conversation_id, id).await {
            answered = i + 1;
            match replies.last_mut() {
                Some((end, last)) if last.entry_id == reply.entry_id => *end = i + 1,
                _ => replies.push((i + 1, reply)),
            }
        }
    }
    if answered == 0 {
        return;
    }
    let mut start = 0;
    for (end, reply) in replies {
        let message = Outbound { text: reply.text, reply_to: job.reply_to.clone(), ..Outbound::default() };
        let events = &job.event_ids[start..end];
        // The attempt before the crash may have streamed it into a message
        // (noted on its first event): that message is finished, not sent again.
        let streamed = match events.first() {
            Some(first) => turns.journal.streamed(first).await,
            None => None,
        };
        turns.delivery.finish_turn(&job.chat, message, streamed, events, Some(reply.entry_id)).await;
        start = end;
    }
    job.earlier.drain(..answered);
    job.event_ids.drain(..answered);
}

/// The agent's reply to the job's (last) message, as the transcript holds it.
async fn recorded_reply(turns: &Turns, job: &TurnJob) -> Option<RecordedReply> {
    let input_id = job.input.as_ref()?.id.clone()?;
    match turns.backend.reply_after(&job.conversation_id, &input_id).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the reply back");
            None
        }
    }
}

/// Stores the reply in the outbox, marks the events answered, then delivers.
async fn finish(turns: &Turns, job: &TurnJob, streamed: Option<Streamed>, text: String, reply_entry: Option<String>) {
    // Interactions this reply does not answer are closed (no "thinking" left behind).
    let unanswered = job.closes.iter().chain(job.interaction.iter().filter(|_| text.trim().is_empty()));
    for interaction in unanswered {
        close_quietly(turns, &job.chat, interaction).await;
    }
    if text.trim().is_empty() {
        return turns.delivery.nothing_to_send(&job.event_ids).await;
    }
    let message =
        Outbound { text, reply_to: job.reply_to.clone(), interaction: job.interaction.clone(), ..Outbound::default() };
    turns.delivery.finish_turn(&job.chat, message, streamed, &job.event_ids, reply_entry).await;
}

/// Ends an interaction with nothing to say (a platform's pending response goes).
async fn close_quietly(turns: &Turns, chat: &ChatKey, interaction: &Interaction) {
    let Some(channel) = turns.registry.channel(&chat.channel) else { return };
    if let Err(e) = channel.close_interaction(chat, interaction, None).await {
        tracing::debug!(error = %e, "could not close an interaction");
    }
}

/// Whether the runtime this task runs on is going down (dropping its tasks): a
/// task spawned now is cancelled at once. On a running runtime the spawned task
/// has not run yet, and does nothing when it does.
fn runtime_going_down() -> bool {
    matches!(tokio::spawn(async {}).now_or_never(), Some(Err(e)) if e.is_cancelled())
}

/// Everything the agent said this turn; for failures a short human line instead.
fn final_text(texts: &[String], result: Option<&TurnResult>) -> String {
    let said = texts.join("\n\n");
    let Some(r) = result else {
        // With the runtime up, only a bug ends a turn without its result.
        tracing::error!("a turn ended without its result");
        return SOMETHING_WENT_WRONG.into();
    };
    match (r.stop_reason, r.error_kind) {
        (StopReason::Error, kind) => {
            let human = match kind {
                Some(ErrorKind::Model) => "The model did not answer; please try again in a moment.",
                _ => SOMETHING_WENT_WRONG,
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

/// Waits in line for a place among the turns allowed to run at once, shown as
/// the conversation's turn meanwhile so that `/cancel` reaches it: `None` when
/// cancelled there. A turn resuming a decided approval is not shown (nor
/// cancelled): dropped here, the approved call would still run at the next turn.
async fn wait_in_line(turns: &Turns, job: &TurnJob, stop: &CancellationToken) -> Option<Place> {
    if job.input.is_none() {
        return Some(turns.places.take(job.tier).await);
    }
    let running = Running { cancel: stop.clone(), senders: job.senders.clone(), phase: Phase::InLine };
    turns.set_active(&job.conversation_id, Some(running));
    tokio::select! {
        place = turns.places.take(job.tier) => Some(place),
        () = stop.cancelled() => None,
    }
}

/// The conversation's entry among the turns taken up (see `Turns::set_active`):
/// removed when dropped, on every way out of a turn, a panic included.
struct TakenUp {
    turns: Turns,
    conversation: String,
}

impl Drop for TakenUp {
    fn drop(&mut self) {
        self.turns.set_active(&self.conversation, None);
    }
}

/// Keeps the typing indicator up, refreshed as long as it lasts on the platform.
fn spawn_typing(channel: Arc<dyn Channel>, chat: ChatKey) -> Option<tokio::task::JoinHandle<()>> {
    let every = channel.capabilities().typing_lasts?;
    Some(tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < TYPING_AT_MOST {
            let _ = channel.typing(&chat).await;
            tokio::time::sleep(every).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::runtime_going_down;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_runtime_is_not_going_down() {
        assert!(!runtime_going_down());
    }

    /// A task still in the middle of its poll while the other worker drops the
    /// runtime's tasks (what a runtime going down does) sees it going down.
    #[test]
    fn a_runtime_dropping_its_tasks_is_going_down() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let handle = runtime.handle().clone();
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        let (running, runs) = std::sync::mpsc::channel::<()>();
        runtime.spawn(async move {
            running.send(()).unwrap();
            // Blocks its worker until the other has dropped the tasks.
            asked.recv().unwrap();
            tell.send(runtime_going_down()).unwrap();
        });
        runs.recv_timeout(std::time::Duration::from_secs(10)).expect("the task runs");
        runtime.shutdown_background();
        // Taken off the runtime's list (the blocked one too) by the other worker.
        let started = std::time::Instant::now();
        while handle.metrics().num_alive_tasks() > 0 && started.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ask.send(()).unwrap();
        assert!(told.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
    }
}
