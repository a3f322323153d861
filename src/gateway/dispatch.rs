//! What happens to a journaled event, in its chat's arrival order: judged
//! (access, group gating), then a command is answered, a message is routed to
//! its conversation and queued as a turn (or only recorded, in listen groups), a
//! button press is decided. Runs after the platform was acknowledged, and again
//! after a crash for every event not marked answered.

use std::sync::Arc;

use switchboard_channel_core::commands::parse_text;
use switchboard_channel_core::{
    ChatKey, ChatKind, Click, Command, Inbound, InboundEvent, InboundKind, Interaction, Sender, SentRef, Visibility,
};

use super::access::{judge, refusal_text, Attempt, Refusal, Verdict};
use super::commands::{Commands, Invocation, COMMANDS};
use super::decisions::{Decisions, Via};
use super::delivery::Delivery;
use super::flood::{Flood, GuestLimit};
use super::journal::Journal;
use super::names::Names;
use super::outbox::Outbound;
use super::pairing::Pairing;
use super::prompts::parse_button;
use super::registry::Registry;
use super::router::Router;
use super::turns::Turns;
use super::waiting::{attributed, input_id, Admitted, Arrival, Incoming};
use super::SOMETHING_WENT_WRONG;
use crate::agent::{AgentBackend, UserInput};
use crate::policy::approvals::{DecideError, Decider};
use crate::policy::Tier;

#[derive(Clone)]
pub struct Dispatcher {
    pub(super) backend: Arc<dyn AgentBackend>,
    pub(super) registry: Registry,
    pub(super) pairing: Pairing,
    pub(super) router: Arc<Router>,
    pub(super) commands: Commands,
    pub(super) turns: Turns,
    pub(super) decisions: Decisions,
    pub(super) delivery: Delivery,
    pub(super) journal: Journal,
    pub(super) names: Names,
    /// How fast guests send.
    pub(super) guests: GuestLimit,
}

impl Dispatcher {
    pub async fn handle(&self, event: InboundEvent, arrival: Arrival) {
        let channel = &event.kind.chat().channel;
        if self.registry.get(channel).is_none() {
            // Journaled by a run that served this channel; nothing can answer it now.
            tracing::warn!(%channel, event = %event.event_id, "an event of a channel not configured now is dropped");
            return self.delivery.nothing_to_send(std::slice::from_ref(&event.event_id)).await;
        }
        match event.kind {
            InboundKind::Message(message) => self.message(message, event.event_id, arrival).await,
            InboundKind::Command(command) => self.command(command, event.event_id).await,
            InboundKind::Click(click) => self.click(click, event.event_id).await,
        }
    }

    /// The tier of `sender` in `chat`'s channel; `None` (logged) when the store fails.
    async fn tier_of(&self, chat: &ChatKey, sender: &str) -> Option<Tier> {
        let served = self.registry.get(&chat.channel)?;
        match served.access.tier(&self.pairing, sender).await {
            Ok(tier) => Some(tier),
            Err(e) => {
                tracing::error!(error = %e, "cannot read who someone is");
                None
            }
        }
    }

    /// Private to `sender` where the channel has ephemeral messages; public otherwise.
    fn visibility(&self, private: bool, chat: &ChatKey, sender: &str) -> Visibility {
        let ephemeral = self.registry.channel(&chat.channel).is_some_and(|c| c.capabilities().ephemeral);
        match private && ephemeral {
            true => Visibility::Private { user: sender.to_string() },
            false => Visibility::Public,
        }
    }

    async fn judge(&self, attempt: &Attempt<'_>) -> Option<Verdict> {
        let rules = &self.registry.get(&attempt.chat.channel)?.access;
        self.names.remember(attempt.sender);
        match judge(&self.pairing, rules, attempt).await {
            Ok(verdict) => Some(verdict),
            Err(e) => {
                // Left unanswered: replayed after a restart, when the store may work.
                tracing::error!(error = %e, "cannot check access");
                None
            }
        }
    }

    async fn message(&self, message: Inbound, event_id: String, arrival: Arrival) {
        let attempt = Attempt {
            chat: &message.chat,
            kind: message.kind,
            sender: &message.sender,
            addressed: message.mentions_bot || message.reply_to_bot,
            space: message.space.as_deref(),
        };
        let Some(verdict) = self.judge(&attempt).await else { return };
        let reply_to = (message.kind == ChatKind::Group).then(|| message.message_id.clone());
        let interaction = message.interaction.clone();
        match verdict {
            Verdict::Refuse(refusal) => {
                self.refuse(&message.chat, &message.sender, refusal, reply_to, interaction, event_id).await
            }
            // A message sent as the bot's command (`/ask`) is answered in a listen
            // group too, but only for people trusted there (a guest may not start
            // turns where the operator asked the bot only to listen).
            Verdict::Listen(tier) if interaction.is_some() && tier < Tier::User => {
                self.refuse(&message.chat, &message.sender, Refusal::Silent, reply_to, interaction, event_id).await
            }
            Verdict::Listen(tier) if interaction.is_none() => self.listen(message, tier, event_id).await,
            Verdict::Listen(tier) | Verdict::Answer(tier) => {
                // Platforms that deliver commands as text.
                if let Some((spec, args)) = parse_text(&message.text, COMMANDS) {
                    let call = Invocation {
                        chat: &message.chat,
                        kind: message.kind,
                        sender: &message.sender,
                        tier,
                        name: spec.name,
                        args: &args,
                    };
                    let answer = self.commands.run(&call).await;
                    let visibility = self.visibility(answer.private, &message.chat, &message.sender.id);
                    let reply = Outbound { text: answer.text, reply_to, interaction, visibility, prompt: None };
                    return self.delivery.reply(&message.chat, reply, std::slice::from_ref(&event_id)).await;
                }
                self.turn(message, tier, event_id, reply_to, arrival).await;
            }
        }
    }

    async fn command(&self, command: Command, event_id: String) {
        let attempt = Attempt {
            chat: &command.chat,
            kind: command.kind,
            sender: &command.sender,
            addressed: command.addressed,
            space: command.space.as_deref(),
        };
        let Some(verdict) = self.judge(&attempt).await else { return };
        let reply_to = command.message_id.clone().filter(|_| command.kind == ChatKind::Group);
        let tier = match verdict {
            Verdict::Answer(tier) => Ok(tier),
            // A command addressed to the bot is answered in a listen group too.
            Verdict::Listen(tier) if command.addressed => Ok(tier),
            Verdict::Listen(_) => Err(Refusal::Silent),
            Verdict::Refuse(refusal) => Err(refusal),
        };
        let tier = match tier {
            Ok(tier) => tier,
            Err(refusal) => {
                let interaction = command.interaction.clone();
                return self.refuse(&command.chat, &command.sender, refusal, reply_to, interaction, event_id).await;
            }
        };
        let call = Invocation {
            chat: &command.chat,
            kind: command.kind,
            sender: &command.sender,
            tier,
            name: &command.name,
            args: &command.args,
        };
        let answer = self.commands.run(&call).await;
        let visibility = self.visibility(answer.private, &command.chat, &command.sender.id);
        let reply =
            Outbound { text: answer.text, reply_to, interaction: command.interaction, visibility, prompt: None };
        self.delivery.reply(&command.chat, reply, std::slice::from_ref(&event_id)).await;
    }

    /// A refused person hears why when that helps them (pairing, a private bot);
    /// in groups nothing is said, except to a slash command, which must be answered.
    async fn refuse(
        &self,
        chat: &ChatKey,
        sender: &Sender,
        refusal: Refusal,
        reply_to: Option<String>,
        interaction: Option<Interaction>,
        event_id: String,
    ) {
        tracing::info!(chat = %chat.id(), sender = %sender.id, "refused");
        let text = refusal_text(&refusal, &chat.channel)
            .or_else(|| interaction.as_ref().map(|_| "I don't take commands from you here.".to_string()));
        match text {
            Some(text) => {
                let visibility = self.visibility(true, chat, &sender.id);
                let reply = Outbound { text, reply_to, interaction, visibility, prompt: None };
                self.delivery.reply(chat, reply, std::slice::from_ref(&event_id)).await;
            }
            None => self.delivery.nothing_to_send(std::slice::from_ref(&event_id)).await,
        }
    }

    /// Notes a guest's words reaching a conversation, before they do (whoever
    /// reads it later, in a group, a shared conversation, the operator's command
    /// line or a search across conversations, reads them); false when that could
    /// not be noted (the words must not go in unnoted).
    async fn note_guest(&self, tier: Tier, conversation: &str) -> bool {
        if tier != Tier::Guest {
            return true;
        }
        match self.backend.note_guest_words(conversation).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot note that a guest spoke in a conversation");
                false
            }
        }
    }

    /// A listened message is recorded in its conversation's order, never answered.
    async fn listen(&self, message: Inbound, tier: Tier, event_id: String) {
        let route = match self.router.route(&message.chat).await {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "cannot route a listened message"),
        };
        if !self.note_guest(tier, &route.conversation_id).await {
            return;
        }
        let (backend, journal) = (self.backend.clone(), self.journal.clone());
        let input = UserInput { text: attributed(&message, tier), id: Some(input_id(&event_id)), first: false };
        let conversation = route.conversation_id.clone();
        self.turns.queue_work(
            &route.conversation_id,
            Box::pin(async move {
                if let Err(e) = backend.record_message(&conversation, input).await {
                    return tracing::error!(error = %e, "cannot record a listened message");
                }
                let _ = journal.done(&event_id).await;
            }),
        );
    }

    /// A message to answer: it waits for its conversation's next turn, unless a
    /// guest sends too fast or too much already waits (both said in a notice).
    async fn turn(&self, message: Inbound, tier: Tier, event_id: String, reply_to: Option<String>, arrival: Arrival) {
        let (chat, sender, interaction) =
            (message.chat.clone(), message.sender.id.clone(), message.interaction.clone());
        let notice = |text: String| {
            let visibility = self.visibility(true, &chat, &sender);
            Outbound { text, reply_to: reply_to.clone(), interaction: interaction.clone(), visibility, prompt: None }
        };
        let route = match self.router.route(&chat).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot route a message");
                let reply = Outbound {
                    text: SOMETHING_WENT_WRONG.into(),
                    reply_to,
                    interaction: interaction.clone(),
                    ..Outbound::default()
                };
                return self.delivery.reply(&chat, reply, std::slice::from_ref(&event_id)).await;
            }
        };
        let busy = self.registry.get(&chat.channel).map(|s| s.busy).unwrap_or_default();
        if tier == Tier::Guest && busy.guest_messages_per_minute > 0 {
            match self.guests.check(&sender, busy.guest_messages_per_minute) {
                Flood::Pass => {}
                Flood::Notify => {
                    let text = "You are sending messages faster than I can take them; I will not read the ones you send in the next minute.";
                    return self.delivery.reply(&chat, notice(text.into()), std::slice::from_ref(&event_id)).await;
                }
                Flood::Drop => {
                    self.close_quietly(&chat, interaction.as_ref()).await;
                    return self.delivery.nothing_to_send(std::slice::from_ref(&event_id)).await;
                }
            }
        }
        if !self.note_guest(tier, &route.conversation_id).await {
            let reply = Outbound { text: SOMETHING_WENT_WRONG.into(), reply_to, interaction, ..Outbound::default() };
            return self.delivery.reply(&chat, reply, std::slice::from_ref(&event_id)).await;
        }
        let incoming = Incoming { message, tier, event_id: event_id.clone(), reply_to: reply_to.clone(), arrival };
        match self.turns.submit(&route.conversation_id, incoming, &busy) {
            Admitted::Full { waiting, first: true } => {
                tracing::info!(chat = %chat.id(), waiting, "messages are turned away: too much waits");
                let text = format!(
                    "I am still working through earlier messages here ({waiting} waiting), so I did not read this one, nor will I read more until I catch up. Send them again in a little while, or use /cancel."
                );
                self.delivery.reply(&chat, notice(text), std::slice::from_ref(&event_id)).await;
            }
            // Said with the first one turned away.
            Admitted::Full { first: false, .. } => {
                self.close_quietly(&chat, interaction.as_ref()).await;
                self.delivery.nothing_to_send(std::slice::from_ref(&event_id)).await
            }
            Admitted::QueueTurn | Admitted::Joined => {}
        }
    }

    /// Ends an interaction that gets no answer (a slash command's pending response goes).
    async fn close_quietly(&self, chat: &ChatKey, interaction: Option<&Interaction>) {
        let (Some(interaction), Some(channel)) = (interaction, self.registry.channel(&chat.channel)) else { return };
        if let Err(e) = channel.close_interaction(chat, interaction, None).await {
            tracing::debug!(error = %e, "could not close an interaction");
        }
    }

    /// A button press on an approval prompt; the press is always closed, with a
    /// private notice when nothing happened.
    async fn click(&self, click: Click, event_id: String) {
        let notice = match parse_button(&click.data) {
            None => Some(DecideError::NotPending.to_string()),
            Some((choice, approval_id)) => {
                self.names.remember(&click.sender);
                let decider = match self.tier_of(&click.chat, &click.sender.id).await {
                    Some(tier) => Decider::Person { id: click.sender.id.clone(), tier },
                    None => return,
                };
                let message = SentRef { message_id: click.message_id.clone() };
                let from = Via::Button { chat: &click.chat, message: &message };
                match self.decisions.decide(approval_id, &decider, choice, None, from).await {
                    Ok(_) => None,
                    Err(e @ (DecideError::NotEntitled | DecideError::NotPending | DecideError::NotShownInFull)) => {
                        Some(e.to_string())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot record a decision");
                        Some(SOMETHING_WENT_WRONG.to_string())
                    }
                }
            }
        };
        if let Some(channel) = self.registry.channel(&click.chat.channel) {
            if let Err(e) = channel.close_interaction(&click.chat, &click.interaction, notice.as_deref()).await {
                tracing::warn!(error = %e, "could not answer a button press");
            }
        }
        self.delivery.nothing_to_send(std::slice::from_ref(&event_id)).await;
    }
}
