//! The Discord adapter: `DiscordChannel` implements the gateway's `Channel` over
//! Discord's HTTP API and Gateway WebSocket: DMs, guild channels and threads,
//! slash commands, approval buttons, and catching up on what was sent while the
//! daemon was down.
//!
//! It speaks the protocol itself (reqwest and tokio-tungstenite, both already in
//! the daemon) rather than through serenity: serenity's client hands every event
//! to its own task, so two messages of one channel can reach the journal out of
//! order, and its shard cannot be driven from outside; its REST client also only
//! honours a custom API address with its rate limiter off.

mod catch_up;
mod config;
mod gateway;
mod interactions;
mod outbound;
mod places;
mod receive;
mod render;
mod rest;
mod settings;
mod wire;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_channel_core::markdown::Block;
use switchboard_channel_core::{
    ApprovalPrompt, Capabilities, Channel, ChannelError, ChatKey, InboundSink, Ingress, Interaction, LengthUnit,
    SendOptions, SentRef,
};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

pub use config::DiscordConfig;
pub use settings::DESCRIPTOR;

/// The channel's registered name: [`ChatKey::channel`] of its chats.
pub const CHANNEL: &str = "discord";

use gateway::GatewayLoop;
use interactions::Acks;
use outbound::Outbound;
use places::Places;
use receive::{Me, Receiver};
use rest::Rest;
use switchboard_channel_core::health::{HealthCell, State};

/// A part is split to this many characters of visible text, leaving room for
/// the Markdown and escapes that rendering adds below Discord's 2,000.
const MAX_VISIBLE: usize = 1_800;
/// Discord's typing indicator lasts ten seconds; it is renewed before that.
const TYPING_LASTS: Duration = Duration::from_secs(8);
/// Editing one message about once a second stays inside Discord's limits.
const MIN_EDIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long `stop` waits for the background tasks before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One Discord bot as a `Channel`.
pub struct DiscordChannel {
    rest: Rest,
    config: DiscordConfig,
    me: RwLock<Option<Me>>,
    places: Places,
    acks: Acks,
    health: HealthCell,
    running: Mutex<Option<Running>>,
}

/// The background tasks of a started channel.
struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DiscordChannel {
    /// Checks the configuration (each bad field named); makes no request.
    pub fn new(config: DiscordConfig) -> Result<DiscordChannel, ChannelError> {
        config::validate(&config).map_err(|problems| config::rejected(&problems))?;
        Ok(DiscordChannel {
            rest: Rest::new(&config.api_url, &config.token)?,
            config,
            me: RwLock::new(None),
            places: Places::default(),
            acks: Acks::default(),
            health: HealthCell::new("gateway", gateway::DEFAULT_SILENCE),
            running: Mutex::new(None),
        })
    }

    /// The bot's user id: known after `start`, else read from the token.
    pub fn bot_id(&self) -> String {
        match &*self.me.read().unwrap_or_else(PoisonError::into_inner) {
            Some(me) => me.user_id.clone(),
            None => config::bot_id_of(&self.config.token).unwrap_or_default(),
        }
    }

    /// Everything sending needs, for one call.
    fn outbound(&self) -> Outbound<'_> {
        Outbound { rest: &self.rest, places: &self.places, acks: &self.acks, me: self.bot_id() }
    }

    /// Who the token belongs to, and its application: refused tokens are `Rejected`.
    async fn sign_in(&self) -> Result<(Me, wire::Application), ChannelError> {
        let user = self.rest.get("/users/@me").await.map_err(|e| e.into_channel("sign in"))?;
        let application: wire::Application = serde_json::from_value(
            self.rest.get("/applications/@me").await.map_err(|e| e.into_channel("read the application"))?,
        )
        .map_err(|e| ChannelError::Transient(format!("discord: unreadable application: {e}")))?;
        let user_id = user["id"].as_str().unwrap_or_default().to_string();
        Ok((Me { user_id, application_id: application.id.clone() }, application))
    }
}

#[async_trait]
impl Channel for DiscordChannel {
    fn name(&self) -> &str {
        CHANNEL
    }

    fn status(&self) -> String {
        self.health.line()
    }

    fn ingress(&self) -> Ingress {
        self.health.ingress()
    }

    /// One gateway connection (shard) per bot token: a second one would
    /// receive every event again.
    fn exclusive_ingress(&self) -> bool {
        true
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_VISIBLE,
            length_unit: LengthUnit::Chars,
            can_edit: true,
            min_edit_interval: MIN_EDIT_INTERVAL,
            typing_lasts: Some(TYPING_LASTS),
            buttons: true,
            ephemeral: true,
            direct_chats: true,
        }
    }

    /// Who the token belongs to and whether the bot can read message content.
    async fn probe(&self) -> Vec<String> {
        match self.sign_in().await {
            Ok((me, application)) => {
                let mut lines = vec![format!("signed in as bot {} (application {})", me.user_id, me.application_id)];
                lines.push(match application.reads_message_content() {
                    true => "the Message Content intent is enabled".into(),
                    false => "the Message Content intent is OFF: guild messages that do not mention the bot arrive empty; turn it on in the Developer Portal (Bot page)".into(),
                });
                lines
            }
            Err(ChannelError::Rejected(why)) => vec![format!("refused: {why}")],
            Err(e) => vec![format!("could not reach Discord: {e}")],
        }
    }

    /// Signs in, registers the slash commands, and connects to the gateway.
    async fn start(&self, sink: Arc<dyn InboundSink>) -> Result<(), ChannelError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(ChannelError::Rejected("discord: already started".into()));
        }
        let (me, application) = self.sign_in().await?;
        if !application.reads_message_content() {
            tracing::warn!(
                "discord: the Message Content intent looks disabled for this bot; guild messages that do not mention it arrive empty (turn it on in the Developer Portal's Bot page)"
            );
        }
        tracing::info!(bot_id = %me.user_id, "discord: signed in");
        *self.me.write().unwrap_or_else(PoisonError::into_inner) = Some(me.clone());
        interactions::register(&self.rest, &me.application_id, &self.config.command_guilds, self.config.commands).await;
        let (stop, stop_rx) = watch::channel(false);
        let (events, events_rx) = mpsc::unbounded_channel();
        let gateway = GatewayLoop {
            rest: self.rest.clone(),
            token: self.config.token.clone(),
            health: self.health.clone(),
            events,
            stop: stop_rx.clone(),
        };
        let receiver = Arc::new(Receiver {
            rest: self.rest.clone(),
            me,
            sink,
            places: self.places.clone(),
            commands: self.config.commands,
            catch_up: self.config.catch_up,
            acks: self.acks.clone(),
            catching_up: Default::default(),
        });
        let tasks = vec![tokio::spawn(gateway.run()), tokio::spawn(receiver.run(events_rx, stop_rx))];
        *running = Some(Running { stop, tasks });
        Ok(())
    }

    async fn stop(&self) {
        let Some(running) = self.running.lock().await.take() else { return };
        let _ = running.stop.send(true);
        for mut task in running.tasks {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                tracing::warn!("discord: a background task did not stop in time; aborting it");
                task.abort();
            }
        }
        self.health.set(State::Stopped);
        tracing::info!("discord: stopped");
    }

    async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError> {
        self.outbound().send(chat, part, options).await
    }

    async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        self.outbound().edit(chat, sent, part).await
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        self.outbound().typing(chat).await
    }

    fn shows_whole(&self, text: &str) -> bool {
        render::PROMPT.fits(text)
    }

    async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        self.outbound().show_approval(chat, prompt).await
    }

    async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        self.outbound().resolve_approval(chat, sent, outcome).await
    }

    async fn close_interaction(
        &self,
        _chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        self.outbound().close_interaction(interaction, notice).await
    }

    async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        self.outbound().open_direct(user).await
    }
}
