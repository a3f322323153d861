//! The Telegram adapter: `TelegramChannel` implements the gateway's `Channel` on teloxide,
//! receiving by long polling or webhook and sending HTML replies, edits and approval buttons.

mod api;
mod approvals;
mod config;
mod errors;
mod inbound;
mod outbound;
mod polling;
mod receive;
mod render;
mod settings;
mod status;
mod webhook;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_channel_core::markdown::Block;
use switchboard_channel_core::{
    plain_blocks, ApprovalPrompt, Capabilities, Channel, ChannelError, ChatKey, InboundSink, Ingress, Interaction,
    LengthUnit, SendOptions, SentRef,
};
use teloxide::payloads::{DeleteWebhookSetters, SetWebhookSetters};
use teloxide::requests::{Request, Requester};
use teloxide::types::BotCommand;
use teloxide::Bot;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub use approvals::MAX_CALLBACK_DATA;
pub use config::{Mode, Problem, TelegramConfig, DEFAULT_API_URL, DEFAULT_POLL_TIMEOUT_SECS, MAX_POLL_TIMEOUT_SECS};
pub use render::to_html as render_html;
pub use settings::DESCRIPTOR;
pub use webhook::SECRET_HEADER;

use api::{Api, Policy};
use config::Validated;
use errors::{is_invalid_token, Redactor};
use inbound::Identity;
use polling::{PollLoop, ALLOWED_UPDATES};
use receive::{OpenCallbacks, Receiver};
use status::{Health, HealthCell};

/// Telegram's typing indicator shows for about five seconds.
const TYPING_LASTS: Duration = Duration::from_secs(4);
/// About one message per second per chat keeps Telegram from rate limiting.
const MIN_EDIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long `stop` waits for the poll loop or listener to finish before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One Telegram bot account as a `Channel`.
pub struct TelegramChannel {
    api: Api,
    settings: Validated,
    commands: &'static [switchboard_channel_core::CommandSpec],
    identity: RwLock<Option<Identity>>,
    health: HealthCell,
    callbacks: OpenCallbacks,
    running: Mutex<Option<Running>>,
}

/// The background task of a started channel.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TelegramChannel {
    /// Checks the configuration (a bad `api_url`, webhook settings or command
    /// list is `Rejected` with a message naming each field); makes no request.
    pub fn new(config: TelegramConfig) -> Result<TelegramChannel, ChannelError> {
        let settings = config::validate(&config).map_err(|problems| config::rejected(&problems))?;
        let bot = Bot::new(config.token.clone()).set_api_url(settings.api_url.clone());
        let health = HealthCell::new(Duration::from_secs(settings.poll_timeout_secs.into()));
        Ok(TelegramChannel {
            api: Api { bot, redactor: Redactor::new(&config.token) },
            settings,
            commands: config.commands,
            identity: RwLock::new(None),
            health,
            callbacks: OpenCallbacks::default(),
            running: Mutex::new(None),
        })
    }

    fn receiver(&self, me: Identity, sink: Arc<dyn InboundSink>) -> Arc<Receiver> {
        Arc::new(Receiver {
            api: self.api.clone(),
            me,
            commands: self.commands,
            sink,
            callbacks: self.callbacks.clone(),
        })
    }

    /// Health for /status: "polling", "webhook", "not started", "stopped",
    /// "conflict: another process is polling this bot token (backing off)" or
    /// "error: ... (retrying)".
    pub fn status(&self) -> String {
        self.health.get().to_string()
    }

    /// The bot's @username (without "@"), known after `start`.
    pub fn bot_username(&self) -> Option<String> {
        self.identity().map(|me| me.username)
    }

    /// The bot's user id, known after `start`; `ChatKey::account` carries it.
    pub fn bot_id(&self) -> Option<u64> {
        self.identity().map(|me| me.id)
    }

    fn identity(&self) -> Option<Identity> {
        self.identity.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn get_me(&self) -> Result<Identity, ChannelError> {
        let me = self.api.retry("getMe", Policy::START, || self.api.bot.get_me().send()).await.map_err(|err| {
            if is_invalid_token(&err) {
                ChannelError::Rejected(
                    "telegram: the bot token was rejected (getMe: Unauthorized); check the configured token".to_owned(),
                )
            } else {
                self.api.redactor.channel_error("getMe", &err)
            }
        })?;
        let username =
            me.user.username.clone().ok_or_else(|| {
                ChannelError::Rejected("telegram: getMe returned a bot without a username".to_owned())
            })?;
        Ok(Identity { id: me.user.id.0, username })
    }

    /// Registers the command menu; a failure is logged, not fatal.
    async fn register_commands(&self) {
        let commands: Vec<BotCommand> =
            self.settings.commands.iter().map(|(name, description)| BotCommand::new(name, description)).collect();
        let result = self
            .api
            .retry("setMyCommands", Policy::START, || self.api.bot.set_my_commands(commands.clone()).send())
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %self.api.redactor.describe(&err), "telegram: could not register the command menu");
        }
    }

    async fn start_polling(&self, me: Identity, sink: Arc<dyn InboundSink>) -> Result<Running, ChannelError> {
        // A webhook would make every getUpdates fail with 409; pending updates are kept.
        self.api
            .retry("deleteWebhook", Policy::START, || self.api.bot.delete_webhook().drop_pending_updates(false).send())
            .await
            .map_err(|err| self.api.redactor.channel_error("deleteWebhook", &err))?;
        // Telegram answered: the first long poll has its full bound to answer too.
        self.health.polled();
        let (stop, stop_rx) = watch::channel(false);
        let poll = PollLoop {
            api: self.api.clone(),
            receiver: self.receiver(me, sink),
            health: self.health.clone(),
            timeout_secs: self.settings.poll_timeout_secs,
            stop: stop_rx,
        };
        self.health.set(Health::Polling);
        let task = tokio::spawn(poll.run());
        tracing::info!("telegram: polling for updates");
        Ok(Running { stop, task })
    }

    async fn start_webhook(&self, me: Identity, sink: Arc<dyn InboundSink>) -> Result<Running, ChannelError> {
        let Some(settings) = self.settings.webhook.clone() else {
            return Err(ChannelError::Rejected("telegram: webhook mode without webhook settings".to_owned()));
        };
        // Listen first, so Telegram's first delivery finds us.
        let listener = webhook::bind(settings.listen).await?;
        let (stop, stop_rx) = watch::channel(false);
        let hook = webhook::Hook {
            receiver: self.receiver(me, sink),
            secret: settings.secret.clone(),
            path: settings.path.clone(),
        };
        let task = webhook::serve(listener, hook, stop_rx, self.health.clone());
        let result = self
            .api
            .retry("setWebhook", Policy::START, || {
                self.api
                    .bot
                    .set_webhook(settings.url.clone())
                    .secret_token(settings.secret.clone())
                    .allowed_updates(ALLOWED_UPDATES)
                    // One connection at a time keeps a chat's updates in order.
                    .max_connections(1)
                    .send()
            })
            .await;
        let running = Running { stop, task };
        if let Err(err) = result {
            shutdown(running).await;
            return Err(self.api.redactor.channel_error("setWebhook", &err));
        }
        self.health.set(Health::Webhook);
        tracing::info!(listen = %settings.listen, path = %settings.path, "telegram: receiving updates by webhook");
        Ok(running)
    }
}

/// Signals the task to stop and waits a little for it; aborts it after that.
async fn shutdown(running: Running) {
    let _ = running.stop.send(true);
    let mut task = running.task;
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
        tracing::warn!("telegram: background task did not stop in time; aborting it");
        task.abort();
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn name(&self) -> &str {
        "telegram"
    }

    fn status(&self) -> String {
        TelegramChannel::status(self)
    }

    fn ingress(&self) -> Ingress {
        self.health.ingress()
    }

    /// getUpdates allows one poller per bot; a webhook takes every replica.
    fn exclusive_ingress(&self) -> bool {
        self.settings.webhook.is_none()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: api::MAX_TEXT_UTF16,
            length_unit: LengthUnit::Utf16,
            can_edit: true,
            min_edit_interval: MIN_EDIT_INTERVAL,
            typing_lasts: Some(TYPING_LASTS),
            buttons: true,
            ephemeral: false,
            direct_chats: true,
        }
    }

    /// getMe: who the token belongs to.
    async fn probe(&self) -> Vec<String> {
        match self.get_me().await {
            Ok(me) => vec![format!("signed in as @{} (id {})", me.username, me.id)],
            Err(ChannelError::Rejected(why)) => vec![format!("refused: {why}")],
            Err(e) => vec![format!("could not reach Telegram: {e}")],
        }
    }

    /// getMe, setMyCommands, then deleteWebhook + the poll loop, or the
    /// listener + setWebhook. Fails if already started or the token is rejected.
    async fn start(&self, sink: Arc<dyn InboundSink>) -> Result<(), ChannelError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(ChannelError::Rejected("telegram: already started".to_owned()));
        }
        let me = self.get_me().await?;
        tracing::info!(bot_id = me.id, username = %me.username, "telegram: signed in");
        *self.identity.write().unwrap_or_else(PoisonError::into_inner) = Some(me.clone());
        self.register_commands().await;
        let started = match self.settings.webhook {
            None => self.start_polling(me, sink).await?,
            Some(_) => self.start_webhook(me, sink).await?,
        };
        *running = Some(started);
        Ok(())
    }

    async fn stop(&self) {
        let Some(running) = self.running.lock().await.take() else { return };
        shutdown(running).await;
        self.health.set(Health::Stopped);
        tracing::info!("telegram: stopped");
    }

    async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError> {
        outbound::send(&self.api, chat, part, options).await
    }

    async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        outbound::edit(&self.api, chat, sent, part).await
    }

    async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        outbound::typing(&self.api, chat).await
    }

    async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        approvals::show(&self.api, chat, prompt).await
    }

    async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        approvals::resolve(&self.api, chat, sent, outcome).await
    }

    /// answerCallbackQuery, with the notice as an alert. A notice for a press
    /// that is no longer open becomes a message in a private chat, and is dropped
    /// (logged) in a group, where everyone would read it.
    async fn close_interaction(
        &self,
        chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        if receive::answer(&self.api, &self.callbacks, &interaction.handle, notice).await? {
            return Ok(());
        }
        match notice {
            Some(text) if api::target(chat)?.chat.is_user() => {
                outbound::send(&self.api, chat, &plain_blocks(text), &SendOptions::default()).await.map(|_| ())
            }
            Some(_) => {
                tracing::info!(chat = %chat.id(), "telegram: a notice for a closed button press in a group dropped");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A Telegram user's private chat with the bot has the user's id (the user
    /// must have started the bot once, or sends fail as rejected).
    async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        let id = user.strip_prefix("telegram:").unwrap_or(user);
        if id.parse::<i64>().map_or(true, |n| n <= 0) {
            return Err(ChannelError::Rejected(format!("telegram: {user:?} is not a Telegram user id")));
        }
        let account = self.bot_id().map(|id| id.to_string()).unwrap_or_default();
        Ok(ChatKey { channel: "telegram".into(), account, chat: id.to_owned(), thread: None })
    }
}
