//! From dispatch events to the gateway's inbound events: messages (gated on
//! nothing here, only shaped: the gateway judges them), slash commands and button
//! presses, handed over in arrival order per Discord channel and side by side
//! across channels (at most [`IN_FLIGHT`] at once); a channel's own changes
//! (created, updated, deleted) in line with its messages; guild-wide events as
//! they come. An interaction is acknowledged to
//! Discord only after the gateway journaled it; a message is handed over again
//! until the gateway takes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_channel_core::ordered::Ordered;
use switchboard_channel_core::{
    ChatKind, Click, Command, CommandSpec, Inbound, InboundEvent, InboundKind, InboundSink, Interaction as Handle,
    Sender,
};
use tokio::sync::{mpsc, watch};

use crate::catch_up;
use crate::config::CatchUp;
use crate::gateway::Dispatch;
use crate::interactions::{self, Acks, Kind, ASK};
use crate::places::{chat_key, Place, Places};
use crate::rest::{Rest, RestError};
use crate::wire::{self, callback, context, interaction_type, message_type, Guild, Interaction, Message, ThreadList};

/// Events of channels (messages, interactions, a channel's changes) being
/// handed over at once.
pub(crate) const IN_FLIGHT: usize = 64;

/// Who the bot is.
#[derive(Debug, Clone)]
pub struct Me {
    pub user_id: String,
    pub application_id: String,
}

/// Turns dispatch events into inbound events.
pub struct Receiver {
    pub rest: Rest,
    pub me: Me,
    pub sink: Arc<dyn InboundSink>,
    pub places: Places,
    pub commands: &'static [CommandSpec],
    pub catch_up: CatchUp,
    pub acks: Acks,
    /// A catch-up is running (one at a time).
    pub catching_up: AtomicBool,
}

impl Receiver {
    /// Handles events until the gateway loop ends or `stop` is set.
    pub async fn run(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<Dispatch>, mut stop: watch::Receiver<bool>) {
        let mut handing = Ordered::new(IN_FLIGHT);
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = stop.changed() => None,
            };
            let Some(event) = event else { return };
            // Messages and interactions wait for their journal writes: beside
            // other channels'. What changes one channel (or thread) stays in
            // line with that channel's messages; the rest is handled at once.
            let key = match event.name.as_str() {
                "MESSAGE_CREATE" | "INTERACTION_CREATE" => event.data["channel_id"].as_str(),
                "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "CHANNEL_DELETE" | "THREAD_CREATE" | "THREAD_UPDATE"
                | "THREAD_DELETE" => event.data["id"].as_str(),
                _ => None,
            };
            match key {
                Some(key) => {
                    let (key, receiver, stop) = (key.to_string(), self.clone(), stop.clone());
                    handing
                        .spawn(key, async move {
                            // Once stopping, nothing more is handed over: an event
                            // before this one may have been given up, and the
                            // next start's catch-up fetches after the newest
                            // journaled message of the channel.
                            if !*stop.borrow() {
                                receiver.handle(event, &stop).await;
                            }
                        })
                        .await;
                }
                None => self.handle(event, &stop).await,
            }
        }
    }

    async fn handle(self: &Arc<Self>, event: Dispatch, stop: &watch::Receiver<bool>) {
        match event.name.as_str() {
            // A fresh session: what was missed is fetched beside the live events.
            "READY" if !self.catching_up.swap(true, Ordering::SeqCst) => {
                let (receiver, stop) = (self.clone(), stop.clone());
                tokio::spawn(async move {
                    catch_up::run(receiver.clone(), stop).await;
                    receiver.catching_up.store(false, Ordering::SeqCst);
                });
            }
            "GUILD_CREATE" => {
                let Ok(guild) = serde_json::from_value::<Guild>(event.data) else { return };
                for channel in guild.channels.iter().chain(guild.threads.iter()) {
                    self.places.learn(channel, Some(&guild.id));
                }
            }
            "CHANNEL_CREATE" | "CHANNEL_UPDATE" | "THREAD_CREATE" | "THREAD_UPDATE" => {
                if let Ok(channel) = serde_json::from_value::<wire::Channel>(event.data) {
                    self.places.learn(&channel, None);
                }
            }
            "CHANNEL_DELETE" | "THREAD_DELETE" => {
                if let Some(id) = event.data["id"].as_str() {
                    self.places.forget(id);
                }
            }
            "THREAD_LIST_SYNC" => {
                if let Ok(list) = serde_json::from_value::<ThreadList>(event.data) {
                    for thread in &list.threads {
                        self.places.learn(thread, list.guild_id.as_deref());
                    }
                }
            }
            "MESSAGE_CREATE" => match serde_json::from_value::<Message>(event.data) {
                Ok(message) => {
                    if let Some(inbound) = self.message(&message).await {
                        self.hand_over(inbound, stop).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "discord: an unreadable message was skipped"),
            },
            "INTERACTION_CREATE" => match serde_json::from_value::<Interaction>(event.data) {
                Ok(interaction) => self.interaction(interaction).await,
                Err(e) => tracing::warn!(error = %e, "discord: an unreadable interaction was skipped"),
            },
            _ => {}
        }
    }

    /// Hands an event to the gateway, again and again until it is journaled (or
    /// the channel stops: then it is fetched again at the next start).
    pub(crate) async fn hand_over(&self, event: InboundEvent, stop: &watch::Receiver<bool>) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.sink.deliver(event.clone()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "discord: the gateway could not take a message yet");
                    if *stop.borrow() {
                        return;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// A person's message as an inbound event; `None` for the bot's own, other
    /// bots', webhooks' and system messages.
    pub(crate) async fn message(&self, message: &Message) -> Option<InboundEvent> {
        // Joins, pins, boosts and the rest are the system's.
        let from_person = !message.author.bot && !message.author.system && message.webhook_id.is_none();
        let written = matches!(message.kind, message_type::DEFAULT | message_type::REPLY);
        if !from_person || !written || message.author.id == self.me.user_id {
            return None;
        }
        let place = self.place(&message.channel_id, message.guild_id.as_deref()).await;
        let chat = chat_key(&self.me.user_id, &message.channel_id, &place);
        let kind = if place.guild.is_some() { ChatKind::Group } else { ChatKind::Direct };
        let mentions_bot = message.mentions.iter().any(|u| u.id == self.me.user_id)
            || message.content.contains(&format!("<@{}>", self.me.user_id))
            || message.content.contains(&format!("<@!{}>", self.me.user_id));
        let reply_to_bot = message.referenced_message.as_ref().is_some_and(|m| m.author.id == self.me.user_id);
        let inbound = Inbound {
            chat,
            kind,
            sender: sender(&message.author, message.member.as_ref().and_then(|m| m.nick.as_deref())),
            text: readable_text(message, &self.me.user_id),
            mentions_bot,
            reply_to_bot,
            message_id: message.id.clone(),
            timestamp: wire::snowflake_ms(&message.id).unwrap_or_default(),
            space: message.guild_id.clone().or(place.guild),
            interaction: None,
        };
        Some(InboundEvent {
            event_id: format!("{}:m:{}", crate::CHANNEL, message.id),
            kind: InboundKind::Message(inbound),
        })
    }

    /// Where a channel is. The guild comes with every guild event, so an event
    /// without one is from someone's direct chat with the bot.
    async fn place(&self, channel: &str, guild: Option<&str>) -> Place {
        match guild {
            None => {
                self.places.learn_direct(channel);
                Place::direct()
            }
            Some(guild) => self.places.resolve_in_guild(&self.rest, channel, guild).await,
        }
    }

    async fn interaction(&self, interaction: Interaction) {
        let Some(event) = self.interaction_event(&interaction).await else {
            return;
        };
        let is_click = matches!(event.kind, InboundKind::Click(_));
        // Answers the gateway sends once the event is journaled wait for this.
        let _acking = self.acks.begin(&interaction.id);
        if let Err(e) = self.sink.deliver(event).await {
            // Unacknowledged: Discord tells the person it failed, and they can try again.
            return tracing::warn!(error = %e, "discord: an interaction could not be journaled; left unanswered");
        }
        // Deferred: a command's answer edits the "thinking" response; a press's
        // outcome edits the prompt message.
        let kind = if is_click { callback::DEFERRED_UPDATE } else { callback::DEFERRED_MESSAGE };
        let path = format!("/interactions/{}/{}/callback", interaction.id, interaction.token);
        let mut result = self.rest.post(&path, &json!({"type": kind})).await;
        if matches!(result, Err(RestError::Transient(_))) {
            // Once more, within Discord's 3 s.
            result = self.rest.post(&path, &json!({"type": kind})).await;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e.into_channel("acknowledge an interaction"), "discord: an interaction was not acknowledged");
        }
    }

    async fn interaction_event(&self, interaction: &Interaction) -> Option<InboundEvent> {
        let user = interaction.invoker()?;
        if interaction.context == Some(context::PRIVATE_CHANNEL) {
            // A group DM or someone else's DM (a user-installed command): no
            // place of the bot's, and no rules to judge it by.
            interactions::answer_privately(&self.rest, &interaction.id, &interaction.token, interactions::NOT_HERE)
                .await;
            return None;
        }
        let channel = interaction.channel_id.as_deref()?;
        let place = self.place(channel, interaction.guild_id.as_deref()).await;
        let chat = chat_key(&self.me.user_id, channel, &place);
        let kind = if interaction.guild_id.is_some() { ChatKind::Group } else { ChatKind::Direct };
        let nick = interaction.member.as_ref().and_then(|m| m.nick.as_deref());
        let sender = sender(user, nick);
        let application = interaction.application_id.clone().unwrap_or_else(|| self.me.application_id.clone());
        let kind_of = if interaction.kind == interaction_type::MESSAGE_COMPONENT { Kind::Press } else { Kind::Command };
        let handle = Handle {
            handle: interactions::Handle {
                application,
                interaction: interaction.id.clone(),
                token: interaction.token.clone(),
                kind: kind_of,
            }
            .encode(),
        };
        let timestamp = wire::snowflake_ms(&interaction.id).unwrap_or_default();
        let event_id = format!("{}:i:{}", crate::CHANNEL, interaction.id);
        let data = interaction.data.clone().unwrap_or_default();
        let kind = match interaction.kind {
            interaction_type::APPLICATION_COMMAND => {
                let name = data.name.clone().unwrap_or_default().to_ascii_lowercase();
                let args = options_text(&data.options);
                if name == ASK {
                    InboundKind::Message(Inbound {
                        chat,
                        kind,
                        sender,
                        text: args,
                        mentions_bot: true,
                        reply_to_bot: false,
                        message_id: interaction.id.clone(),
                        timestamp,
                        space: interaction.guild_id.clone(),
                        interaction: Some(handle.clone()),
                    })
                } else if self.commands.iter().any(|c| c.name == name) {
                    InboundKind::Command(Command {
                        chat,
                        kind,
                        sender,
                        name,
                        args,
                        addressed: true,
                        message_id: None,
                        interaction: Some(handle.clone()),
                        timestamp,
                        space: interaction.guild_id.clone(),
                    })
                } else {
                    tracing::info!(command = %name, "discord: a command this bot does not have; answered as unknown");
                    interactions::answer_privately(
                        &self.rest,
                        &interaction.id,
                        &interaction.token,
                        interactions::UNKNOWN,
                    )
                    .await;
                    return None;
                }
            }
            interaction_type::MESSAGE_COMPONENT => InboundKind::Click(Click {
                chat,
                sender,
                data: data.custom_id.clone().unwrap_or_default(),
                message_id: interaction.message.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                interaction: handle,
            }),
            _ => return None,
        };
        Some(InboundEvent { event_id, kind })
    }
}

fn sender(user: &wire::User, nick: Option<&str>) -> Sender {
    let name = nick.filter(|n| !n.trim().is_empty()).map(str::to_string).unwrap_or_else(|| user.shown_name());
    Sender { id: format!("{}:{}", crate::CHANNEL, user.id), name, is_bot: user.bot }
}

/// A command's options as one line of text: the values, in order.
fn options_text(options: &[wire::CommandOption]) -> String {
    let values: Vec<String> = options
        .iter()
        .filter_map(|o| match &o.value {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        })
        .collect();
    values.join(" ").trim().to_string()
}

/// The text the model reads: the bot's own mention removed, other people's
/// mentions as `@name`.
fn readable_text(message: &Message, me: &str) -> String {
    let mut text = message.content.replace(&format!("<@{me}>"), "").replace(&format!("<@!{me}>"), "");
    for user in &message.mentions {
        let name = format!("@{}", user.shown_name());
        text = text.replace(&format!("<@{}>", user.id), &name).replace(&format!("<@!{}>", user.id), &name);
    }
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bots_mention_is_removed_and_others_named() {
        let message: Message = serde_json::from_value(json!({
            "id": "5", "channel_id": "2", "author": {"id": "3", "username": "ann"},
            "content": "<@99> ask <@!4> about it", "type": 0,
            "mentions": [{"id": "99", "username": "bot"}, {"id": "4", "username": "bob", "global_name": "Bob B"}]
        }))
        .unwrap();
        assert_eq!(readable_text(&message, "99"), "ask @Bob B about it");
    }
}
