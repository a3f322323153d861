//! The Slack adapter: `SlackChannel` implements the gateway's `Channel` over
//! Slack's Web API and Socket Mode (or, in HTTP mode, the Events API and
//! interactivity endpoints): mentions answered in threads, DMs, the assistant
//! pane, the `/switchboard` slash command, and approvals as Block Kit buttons.
//!
//! It speaks the protocols itself (reqwest and tokio-tungstenite, both already
//! in the daemon) rather than through slack-morphism: every envelope must be
//! acknowledged only after the gateway journaled it and in arrival order, which
//! is the whole of the Socket Mode client, and one HTTP and TLS stack keeps the
//! binary small.

mod api;
mod config;
mod http;
mod names;
mod outbound;
mod receive;
mod render;
mod settings;
mod socket;
mod threads;
mod wire;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchboard_channel_core::markdown::Block;
use switchboard_channel_core::{
    ApprovalPrompt, Capabilities, Channel, ChannelError, ChatKey, InboundSink, Ingress, Interaction, LengthUnit,
    SendOptions, SentRef,
};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub use config::{Mode, SlackConfig};
pub use http::SIGNATURE_HEADER;
pub use settings::DESCRIPTOR;

use api::Api;
use names::Names;
use outbound::Outbound;
use receive::Receiver;
use socket::SocketLoop;
use switchboard_channel_core::health::{HealthCell, State};
use threads::Threads;
use wire::Identity;

/// The channel's registered name: `ChatKey::channel` of its chats.
pub const CHANNEL: &str = "slack";

/// Parts are split to this many characters: Slack shows up to 4,000 of a
/// message's text before folding it, and a section holds 3,000.
const MAX_TEXT: usize = 3_000;
/// `chat.update` is limited per workspace (Tier 3, about 50 a minute); one edit
/// of a streamed reply every 1.5 s stays well inside it.
const MIN_EDIT_INTERVAL: Duration = Duration::from_millis(1500);
/// An assistant thread's status stays until the reply; renewed now and then.
const STATUS_LASTS: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One Slack app as a `Channel`.
pub struct SlackChannel {
    api: Api,
    config: SlackConfig,
    me: RwLock<Option<Identity>>,
    threads: Threads,
    health: HealthCell,
    running: Mutex<Option<Running>>,
}

/// The background task of a started channel.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SlackChannel {
    /// Checks the configuration (each bad field named); makes no request.
    pub fn new(config: SlackConfig) -> Result<SlackChannel, ChannelError> {
        config::validate(&config).map_err(|problems| config::rejected(&problems))?;
        Ok(SlackChannel {
            api: Api::new(&config.api_url, &config.bot_token)?,
            config,
            me: RwLock::new(None),
            threads: Threads::default(),
            health: HealthCell::new("socket mode", socket::SILENT_FOR),
            running: Mutex::new(None),
        })
    }

    fn account(&self) -> String {
        self.me.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|m| m.user_id.clone()).unwrap_or_default()
    }

    fn outbound(&self) -> Outbound<'_> {
        Outbound { api: &self.api, threads: &self.threads }
    }

    /// `auth.test`: who the bot token belongs to, and its scopes when Slack says.
    async fn sign_in(&self) -> Result<(Identity, Option<String>), ChannelError> {
        let (me, scopes) =
            self.api.call_with_scopes("auth.test", &json!({})).await.map_err(|e| e.into_channel("auth.test"))?;
        let me = serde_json::from_value(me)
            .map_err(|e| ChannelError::Transient(format!("slack: unreadable auth.test: {e}")))?;
        Ok((me, scopes))
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn name(&self) -> &str {
        CHANNEL
    }

    fn status(&self) -> String {
        self.health.line()
    }

    fn ingress(&self) -> Ingress {
        self.health.ingress()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_TEXT,
            length_unit: LengthUnit::Chars,
            can_edit: true,
            min_edit_interval: MIN_EDIT_INTERVAL,
            typing_lasts: Some(STATUS_LASTS),
            buttons: true,
            ephemeral: true,
            direct_chats: true,
        }
    }

    /// `auth.test`, and (socket mode) that the app-level token opens connections.
    async fn probe(&self) -> Vec<String> {
        let mut lines = match self.sign_in().await {
            Ok((me, scopes)) => {
                let mut lines =
                    vec![format!("signed in as bot user {} (team {})", me.user_id, me.team_id.unwrap_or_default())];
                if let Some(granted) = scopes {
                    let granted: Vec<&str> = granted.split(',').map(str::trim).collect();
                    let missing: Vec<&str> = config::SCOPES.iter().copied().filter(|s| !granted.contains(s)).collect();
                    lines.push(match missing.as_slice() {
                        [] => "the bot token has every scope switchboard uses".into(),
                        missing => format!(
                            "the bot token lacks the scopes {}: add them (config/slack-app-manifest.yaml has them all) and reinstall the app",
                            missing.join(", ")
                        ),
                    });
                }
                lines
            }
            Err(ChannelError::Rejected(why)) => return vec![format!("refused: {why}")],
            Err(e) => return vec![format!("could not reach Slack: {e}")],
        };
        if self.config.mode == Mode::Socket {
            let app = Api::new(&self.config.api_url, &self.config.app_token);
            lines.push(match app.map(|a| async move { a.call("apps.connections.open", &json!({})).await }) {
                Ok(call) => match call.await {
                    Ok(_) => "the app-level token opens Socket Mode connections".into(),
                    Err(e) => format!("socket mode: {}", e.into_channel("apps.connections.open")),
                },
                Err(e) => e.to_string(),
            });
        }
        lines
    }

    /// Signs in, then connects (socket mode) or listens (HTTP mode).
    async fn start(&self, sink: Arc<dyn InboundSink>) -> Result<(), ChannelError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(ChannelError::Rejected("slack: already started".into()));
        }
        let (me, _) = self.sign_in().await?;
        tracing::info!(bot_user = %me.user_id, "slack: signed in");
        *self.me.write().unwrap_or_else(PoisonError::into_inner) = Some(me.clone());
        let receiver = Arc::new(Receiver {
            api: self.api.clone(),
            me,
            sink,
            commands: self.config.commands,
            slash_command: self.config.slash_command.clone(),
            suggested_prompts: self.config.suggested_prompts.clone(),
            threads: self.threads.clone(),
            names: Names::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = match self.config.mode {
            Mode::Socket => {
                let socket = SocketLoop {
                    app_api: Api::new(&self.config.api_url, &self.config.app_token)?,
                    receiver,
                    health: self.health.clone(),
                    stop: stop_rx,
                };
                tokio::spawn(socket.run())
            }
            Mode::Http => {
                let listener = http::bind(self.config.http_listen).await?;
                self.health.set(State::Listening);
                let endpoint = http::Endpoint {
                    receiver,
                    signing_secret: self.config.signing_secret.clone(),
                    health: self.health.clone(),
                };
                http::serve(listener, endpoint, stop_rx)
            }
        };
        *running = Some(Running { stop, task });
        Ok(())
    }

    async fn stop(&self) {
        let Some(running) = self.running.lock().await.take() else { return };
        let _ = running.stop.send(true);
        let mut task = running.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
        self.health.set(State::Stopped);
        tracing::info!("slack: stopped");
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
        chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        self.outbound().close_interaction(chat, interaction, notice).await
    }

    async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        self.outbound().open_direct(&self.account(), user).await
    }
}
