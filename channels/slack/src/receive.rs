//! From Slack's events, presses and slash commands to the gateway's inbound
//! events. Each is handed to the gateway (journaled) before its envelope or HTTP
//! request is acknowledged; nothing slow happens before that.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_channel_core::{
    ChatKey, ChatKind, Click, Command, CommandSpec, Inbound, InboundEvent, InboundKind, InboundSink, Interaction,
    Sender,
};

use crate::api::Api;
use crate::names::Names;
use crate::threads::Threads;
use crate::wire::{
    self, AssistantThreadStarted, Envelope, EventCallback, Identity, Interactive, MessageEvent, SlashCommand,
};
use crate::CHANNEL;

/// `/switchboard ask …`: talking to the agent without a mention.
pub const ASK: &str = "ask";

/// Turns Slack's payloads into inbound events.
pub struct Receiver {
    pub api: Api,
    pub me: Identity,
    pub sink: Arc<dyn InboundSink>,
    pub commands: &'static [CommandSpec],
    pub slash_command: String,
    pub suggested_prompts: Vec<(String, String)>,
    pub threads: Threads,
    pub names: Names,
}

/// What answering a press or a slash command needs later: who, and where to respond.
pub fn handle(user: &str, response_url: Option<&str>) -> Interaction {
    Interaction { handle: json!({"u": user, "r": response_url}).to_string() }
}

impl Receiver {
    /// One Socket Mode envelope; `true` when it may be acknowledged (handled or
    /// not for us), `false` when the gateway could not take it (Slack redelivers).
    pub async fn envelope(&self, envelope: &Envelope) -> bool {
        match envelope.kind.as_str() {
            "events_api" => match serde_json::from_value::<EventCallback>(envelope.payload.clone()) {
                Ok(callback) => self.event(&callback).await,
                Err(e) => skip("event", &e),
            },
            "interactive" => match serde_json::from_value::<Interactive>(envelope.payload.clone()) {
                Ok(interactive) => self.interactive(&interactive).await,
                Err(e) => skip("interactive payload", &e),
            },
            "slash_commands" => match serde_json::from_value::<SlashCommand>(envelope.payload.clone()) {
                Ok(command) => self.slash(&command).await,
                Err(e) => skip("slash command", &e),
            },
            _ => true,
        }
    }

    async fn deliver(&self, event: InboundEvent) -> bool {
        match self.sink.deliver(event).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "slack: the gateway could not take an event; left for Slack to redeliver");
                false
            }
        }
    }

    /// An Events API callback.
    pub async fn event(&self, callback: &EventCallback) -> bool {
        let kind = callback.event["type"].as_str().unwrap_or_default();
        match kind {
            "message" | "app_mention" => match serde_json::from_value::<MessageEvent>(callback.event.clone()) {
                Ok(message) => match self.message(&message).await {
                    Some(event) => self.deliver(event).await,
                    None => true,
                },
                Err(e) => skip("message", &e),
            },
            "assistant_thread_started" => {
                if let Ok(started) = serde_json::from_value::<AssistantThreadStarted>(callback.event.clone()) {
                    self.assistant_started(&started);
                }
                true
            }
            _ => true,
        }
    }

    /// A person's message as an inbound event; `None` for bots (the bot itself
    /// included), edits, deletions, joins and other subtypes.
    pub async fn message(&self, message: &MessageEvent) -> Option<InboundEvent> {
        let from_bot = message.bot_id.is_some() || message.user.as_deref() == Some(self.me.user_id.as_str());
        if from_bot || !matches!(message.subtype.as_deref(), None | Some("thread_broadcast" | "file_share")) {
            return None;
        }
        let user = message.user.clone()?;
        let direct = message.channel_type.as_deref() == Some("im") || wire::is_direct(&message.channel);
        let mention = format!("<@{}>", self.me.user_id);
        let mentions_bot = message.text.contains(&mention);
        // A mention in a channel starts a thread of its own; a thread the bot is in
        // continues without one.
        let thread = match (&message.thread_ts, direct) {
            (Some(thread), _) => Some(thread.clone()),
            (None, false) if mentions_bot => Some(message.ts.clone()),
            (None, _) => None,
        };
        // A thread the bot posted in continues without a mention.
        let mut reply_to_bot = false;
        if let (Some(thread), false, false) = (&message.thread_ts, direct, mentions_bot) {
            reply_to_bot = self.threads.is_member(&self.api, &self.me.user_id, &message.channel, thread).await;
        }
        if direct {
            // Slack sends the bot only its own DMs' messages.
            self.threads.learn_dm(&message.channel, &user);
        }
        if let (true, Some(thread)) = (direct, &message.thread_ts) {
            if self.threads.take_untitled(&message.channel, thread) {
                self.set_title(&message.channel, thread, &message.text);
            }
        }
        let text = unescape(&message.text.replace(&mention, "")).trim().to_string();
        let inbound = Inbound {
            chat: ChatKey {
                channel: CHANNEL.into(),
                account: self.me.user_id.clone(),
                chat: message.channel.clone(),
                thread,
            },
            kind: if direct { ChatKind::Direct } else { ChatKind::Group },
            sender: Sender {
                id: format!("{CHANNEL}:{user}"),
                name: self.names.of(&self.api, &user).await,
                is_bot: false,
            },
            text,
            mentions_bot,
            reply_to_bot,
            message_id: message.ts.clone(),
            timestamp: ts_ms(&message.ts),
            space: None,
            interaction: None,
        };
        // The same id for the `message` and the `app_mention` of one mention.
        Some(InboundEvent {
            event_id: format!("{CHANNEL}:{}:{}", message.channel, message.ts),
            kind: InboundKind::Message(inbound),
        })
    }

    /// A button press (`block_actions`).
    pub async fn interactive(&self, payload: &Interactive) -> bool {
        let (Some(action), Some(channel), Some(message)) =
            (payload.actions.first(), &payload.channel, &payload.message)
        else {
            return true;
        };
        if payload.kind != "block_actions" {
            return true;
        }
        // A prompt people replied to reports itself as its own thread's root.
        let thread = message.thread_ts.clone().filter(|t| *t != message.ts);
        let user = &payload.user.id;
        let click = Click {
            chat: ChatKey {
                channel: CHANNEL.into(),
                account: self.me.user_id.clone(),
                chat: channel.id.clone(),
                thread: thread.clone(),
            },
            sender: Sender {
                id: format!("{CHANNEL}:{user}"),
                name: self.names.of(&self.api, user).await,
                is_bot: false,
            },
            data: action.value.clone().unwrap_or_default(),
            message_id: message.ts.clone(),
            interaction: handle(user, payload.response_url.as_deref()),
        };
        let id = payload
            .trigger_id
            .clone()
            .or_else(|| action.action_ts.clone())
            .unwrap_or_else(|| format!("{}:{}", message.ts, action.action_id));
        let event = InboundEvent { event_id: format!("{CHANNEL}:a:{id}"), kind: InboundKind::Click(click) };
        self.deliver_or_say_so(event, payload.response_url.as_deref().unwrap_or_default()).await
    }

    /// The slash command: `/switchboard <command> [args]`, or `ask <text>`.
    pub async fn slash(&self, payload: &SlashCommand) -> bool {
        let (sub, args) = match payload.text.trim().split_once(char::is_whitespace) {
            Some((sub, args)) => (sub.to_ascii_lowercase(), args.trim().to_string()),
            None => (payload.text.trim().to_ascii_lowercase(), String::new()),
        };
        let sub = if sub.is_empty() { "help".to_string() } else { sub };
        // A slash command works in any DM, the bot's or two other people's: only
        // the bot's own is a direct chat (the other is shared, so a group).
        let direct = wire::is_direct(&payload.channel_id)
            && self.threads.is_bot_dm(&self.api, &payload.channel_id, &payload.user_id).await;
        let chat = ChatKey {
            channel: CHANNEL.into(),
            account: self.me.user_id.clone(),
            chat: payload.channel_id.clone(),
            thread: None,
        };
        let sender = Sender {
            id: format!("{CHANNEL}:{}", payload.user_id),
            name: self.names.of(&self.api, &payload.user_id).await,
            is_bot: false,
        };
        let interaction = handle(&payload.user_id, Some(&payload.response_url));
        let kind = if direct { ChatKind::Direct } else { ChatKind::Group };
        let timestamp = now_ms();
        let event = if sub == ASK {
            InboundKind::Message(Inbound {
                chat,
                kind,
                sender,
                text: args,
                mentions_bot: true,
                reply_to_bot: false,
                message_id: String::new(),
                timestamp,
                space: None,
                interaction: Some(interaction),
            })
        } else if let Some(spec) = self.commands.iter().find(|c| c.name == sub) {
            InboundKind::Command(Command {
                chat,
                kind,
                sender,
                name: spec.name.to_string(),
                args,
                addressed: true,
                message_id: None,
                interaction: Some(interaction),
                timestamp,
                space: None,
            })
        } else {
            let text = format!("I don't know `{sub}`. Try `{} help`.", self.slash_command);
            self.notify(&payload.response_url, text);
            return true;
        };
        let id = if payload.trigger_id.is_empty() {
            format!("{}:{timestamp}", payload.user_id)
        } else {
            payload.trigger_id.clone()
        };
        let event = InboundEvent { event_id: format!("{CHANNEL}:c:{id}"), kind: event };
        self.deliver_or_say_so(event, &payload.response_url).await
    }

    /// A slash command or a press: Slack never sends one again, so it is always
    /// acknowledged; when the gateway could not take it, the person is told.
    async fn deliver_or_say_so(&self, event: InboundEvent, response_url: &str) -> bool {
        if !self.deliver(event).await {
            self.notify(response_url, "I could not take that just now; please try again in a moment.".into());
        }
        true
    }

    /// A private notice through a response URL, after the acknowledgement.
    fn notify(&self, response_url: &str, text: String) {
        let (api, url) = (self.api.clone(), response_url.to_string());
        tokio::spawn(async move {
            let body = json!({"response_type": "ephemeral", "text": crate::render::escape(&text)});
            if let Err(e) = api.respond(&url, &body).await {
                tracing::debug!(error = ?e, "slack: a notice could not be sent");
            }
        });
    }

    /// The assistant pane opened: suggested prompts, and a title from the first message.
    fn assistant_started(&self, started: &AssistantThreadStarted) {
        let thread = &started.assistant_thread;
        self.threads.assistant_started(&thread.channel_id, &thread.thread_ts);
        if self.suggested_prompts.is_empty() {
            return;
        }
        let prompts: Vec<Value> =
            self.suggested_prompts.iter().map(|(title, message)| json!({"title": title, "message": message})).collect();
        let body = json!({"channel_id": thread.channel_id, "thread_ts": thread.thread_ts, "prompts": prompts});
        let api = self.api.clone();
        tokio::spawn(async move {
            if let Err(e) = api.call("assistant.threads.setSuggestedPrompts", &body).await {
                tracing::debug!(error = ?e, "slack: suggested prompts not set");
            }
        });
    }

    fn set_title(&self, channel: &str, thread: &str, text: &str) {
        let title: String = unescape(text).chars().take(60).collect();
        let body = json!({"channel_id": channel, "thread_ts": thread, "title": title});
        let api = self.api.clone();
        tokio::spawn(async move {
            if let Err(e) = api.call("assistant.threads.setTitle", &body).await {
                tracing::debug!(error = ?e, "slack: assistant thread title not set");
            }
        });
    }
}

fn skip(what: &str, e: &serde_json::Error) -> bool {
    tracing::warn!(error = %e, "slack: an unreadable {what} was skipped");
    true
}

/// Slack escapes `&`, `<` and `>` in message text.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// A message `ts` (`1712345678.123456`) in milliseconds.
fn ts_ms(ts: &str) -> u64 {
    ts.parse::<f64>().map(|s| (s * 1000.0) as u64).unwrap_or_else(|_| now_ms())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_are_undone_and_ts_read() {
        assert_eq!(unescape("a &lt;b&gt; &amp;amp;"), "a <b> &amp;");
        assert_eq!(ts_ms("1712345678.123456"), 1_712_345_678_123);
    }
}
