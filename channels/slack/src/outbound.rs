//! Everything the app sends: messages (in the chat's thread), updates, private
//! (ephemeral) notices, answers to slash commands, approval prompts with Block
//! Kit buttons and their outcome, and the assistant pane's status.

use serde_json::{json, Value};
use switchboard_channel_core::markdown::Block;
use switchboard_channel_core::{ApprovalPrompt, ChannelError, ChatKey, Interaction, SendOptions, SentRef, Visibility};

use crate::api::{Api, ApiError};
use crate::render;
use crate::threads::Threads;
use crate::wire;

/// What the assistant pane shows while a turn runs.
const THINKING: &str = "is thinking…";

/// The bot's view of where it sends.
pub struct Outbound<'a> {
    pub api: &'a Api,
    pub threads: &'a Threads,
}

/// An interaction handle made by `receive::handle`.
struct Handle {
    user: String,
    response_url: Option<String>,
}

fn parse(interaction: &Interaction) -> Result<Handle, ChannelError> {
    let value: Value = serde_json::from_str(&interaction.handle)
        .map_err(|_| ChannelError::Rejected("slack: not an interaction handle".into()))?;
    let user = value["u"]
        .as_str()
        .ok_or_else(|| ChannelError::Rejected("slack: an interaction handle without a user".into()))?;
    Ok(Handle { user: user.to_string(), response_url: value["r"].as_str().map(str::to_string) })
}

/// `slack:U123` or `U123` as Slack's id.
fn user_id(user: &str) -> &str {
    user.strip_prefix(crate::CHANNEL).and_then(|u| u.strip_prefix(':')).unwrap_or(user)
}

impl Outbound<'_> {
    /// One part. Public: a message in the chat (its thread). Private: an
    /// ephemeral message only that person sees (through a slash command's
    /// response URL when it answers one).
    pub async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError> {
        let text = render::to_mrkdwn(part);
        let handle = options.interaction.as_ref().map(parse).transpose()?;
        match &options.visibility {
            Visibility::Private { user } => {
                if let Some(url) = handle.as_ref().and_then(|h| h.response_url.as_deref()) {
                    let body = json!({"response_type": "ephemeral", "text": text, "replace_original": false});
                    if self.api.respond(url, &body).await.is_ok() {
                        return Ok(SentRef { message_id: String::new() });
                    }
                }
                self.ephemeral(chat, user_id(user), &text).await
            }
            Visibility::Public => {
                let mut body =
                    json!({"channel": chat.chat, "text": text, "unfurl_links": false, "unfurl_media": false});
                // Part of the thread from the moment it posts: a person may
                // answer before Slack's reply to this call is read. What it knew
                // before comes back if Slack refuses the post.
                let mut before = None;
                if let Some(thread) = &chat.thread {
                    body["thread_ts"] = json!(thread);
                    before = Some(self.threads.joined(&chat.chat, thread));
                }
                let posted = self.api.call("chat.postMessage", &body).await;
                if let (Err(ApiError::Refused(_)), Some(thread), Some(before)) = (&posted, &chat.thread, before) {
                    self.threads.restore(&chat.chat, thread, before);
                }
                match posted {
                    Ok(sent) => Ok(SentRef { message_id: sent["ts"].as_str().unwrap_or_default().to_string() }),
                    // A slash command in a channel the app is not in: answered through its response URL.
                    Err(ApiError::Refused(code))
                        if matches!(code.as_str(), "not_in_channel" | "channel_not_found") && handle.is_some() =>
                    {
                        let url = handle.and_then(|h| h.response_url).unwrap_or_default();
                        let body = json!({"response_type": "in_channel", "text": text});
                        self.api.respond(&url, &body).await.map_err(|e| e.into_channel("response_url"))?;
                        Ok(SentRef { message_id: String::new() })
                    }
                    Err(e) => Err(e.into_channel("chat.postMessage")),
                }
            }
        }
    }

    async fn ephemeral(&self, chat: &ChatKey, user: &str, text: &str) -> Result<SentRef, ChannelError> {
        let mut body = json!({"channel": chat.chat, "user": user, "text": text});
        if let Some(thread) = &chat.thread {
            body["thread_ts"] = json!(thread);
        }
        let sent =
            self.api.call("chat.postEphemeral", &body).await.map_err(|e| e.into_channel("chat.postEphemeral"))?;
        Ok(SentRef { message_id: sent["message_ts"].as_str().unwrap_or_default().to_string() })
    }

    /// `chat.update` with the new text (a message with blocks keeps them unless
    /// given others: streamed replies have none).
    pub async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        if sent.message_id.is_empty() {
            return Err(ChannelError::Unsupported("editing an answer sent through a response URL"));
        }
        let body = json!({"channel": chat.chat, "ts": sent.message_id, "text": render::to_mrkdwn(part)});
        self.api.call("chat.update", &body).await.map(|_| ()).map_err(|e| e.into_channel("chat.update"))
    }

    /// In an assistant thread (a thread of a direct chat), its status line.
    /// Slack has no typing indicator for apps elsewhere.
    pub async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        let Some(thread) = chat.thread.as_deref().filter(|_| wire::is_direct(&chat.chat)) else { return Ok(()) };
        let body = json!({"channel_id": chat.chat, "thread_ts": thread, "status": THINKING});
        if let Err(e) = self.api.call("assistant.threads.setStatus", &body).await {
            tracing::debug!(error = ?e, "slack: assistant status not set");
        }
        Ok(())
    }

    /// The question as a section and its buttons as an actions block; each
    /// button's value is the gateway's opaque data.
    pub async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        let question = render::PROMPT.to_fit(&prompt.text);
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": question}})];
        if !prompt.buttons.is_empty() {
            let last = prompt.buttons.len() - 1;
            let buttons: Vec<Value> = prompt
                .buttons
                .iter()
                .enumerate()
                .map(|(i, (label, data))| {
                    let mut button = json!({
                        "type": "button", "action_id": format!("approval-{i}"), "value": data,
                        "text": {"type": "plain_text", "text": clip(label, 75)},
                    });
                    match i {
                        0 => button["style"] = json!("primary"),
                        _ if i == last => button["style"] = json!("danger"),
                        _ => {}
                    }
                    button
                })
                .collect();
            blocks.push(json!({"type": "actions", "elements": buttons}));
        }
        let mut body = json!({"channel": chat.chat, "text": question, "blocks": blocks});
        if let Some(thread) = &chat.thread {
            body["thread_ts"] = json!(thread);
        }
        let sent = self.api.call("chat.postMessage", &body).await.map_err(|e| e.into_channel("chat.postMessage"))?;
        Ok(SentRef { message_id: sent["ts"].as_str().unwrap_or_default().to_string() })
    }

    /// The prompt becomes the outcome; its buttons go.
    pub async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        let text = render::escape(outcome);
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": clip(&text, 3000)}}]);
        let body = json!({"channel": chat.chat, "ts": sent.message_id, "text": text, "blocks": blocks});
        self.api.call("chat.update", &body).await.map(|_| ()).map_err(|e| e.into_channel("chat.update"))
    }

    /// A press was acknowledged on arrival; a notice goes to the presser alone.
    pub async fn close_interaction(
        &self,
        chat: &ChatKey,
        interaction: &Interaction,
        notice: Option<&str>,
    ) -> Result<(), ChannelError> {
        let Some(notice) = notice else { return Ok(()) };
        let handle = parse(interaction)?;
        self.ephemeral(chat, &handle.user, &render::escape(notice)).await.map(|_| ())
    }

    /// The direct chat with `user` (`slack:U123`).
    pub async fn open_direct(&self, account: &str, user: &str) -> Result<ChatKey, ChannelError> {
        let id = user_id(user);
        if !crate::config::is_slack_id(id) {
            return Err(ChannelError::Rejected(format!("slack: {user:?} is not a Slack user id")));
        }
        let opened = self
            .api
            .call("conversations.open", &json!({"users": id}))
            .await
            .map_err(|e| e.into_channel("conversations.open"))?;
        let chat = opened["channel"]["id"]
            .as_str()
            .ok_or_else(|| ChannelError::Transient("slack: conversations.open gave no channel".into()))?;
        Ok(ChatKey { channel: crate::CHANNEL.into(), account: account.into(), chat: chat.into(), thread: None })
    }
}

/// At most `max` characters.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}
