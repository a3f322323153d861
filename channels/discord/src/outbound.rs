//! Everything the bot sends: messages (as replies, as an interaction's answer,
//! privately), edits, typing, approval prompts and their outcome. Every message
//! carries empty `allowed_mentions`, so nothing the agent writes can ping anyone.

use serde_json::{json, Value};
use switchboard_channel_core::markdown::Block;
use switchboard_channel_core::{ApprovalPrompt, ChannelError, ChatKey, Interaction, SendOptions, SentRef, Visibility};

use crate::interactions::{no_pings, Acks, Handle, Kind, EPHEMERAL};
use crate::places::{target, Places};
use crate::render;
use crate::rest::{Rest, RestError};
use crate::wire::component;

/// Button styles.
const PRIMARY: u64 = 1;
const SUCCESS: u64 = 3;
const DANGER: u64 = 4;

/// Discord's limit on a message nonce.
const MAX_NONCE: usize = 25;

/// The bot's view of where it sends.
pub struct Outbound<'a> {
    pub rest: &'a Rest,
    pub places: &'a Places,
    pub acks: &'a Acks,
    /// The bot's own user id (ChatKey::account).
    pub me: String,
}

impl Outbound<'_> {
    /// One part. An interaction's first part edits its "thinking" response (a
    /// private one replaces it with an ephemeral follow-up); a private later
    /// part is another ephemeral follow-up. Everything else is a channel message
    /// with the part's nonce (so a resend cannot post it twice); a private one
    /// without an interaction goes to the person's direct chat.
    pub async fn send(&self, chat: &ChatKey, part: &[Block], options: &SendOptions) -> Result<SentRef, ChannelError> {
        let content = render::content(part);
        let private = matches!(options.visibility, Visibility::Private { .. });
        if let Some(interaction) = &options.interaction {
            let handle = Handle::decode(&interaction.handle)?;
            if options.part == 0 || private {
                match self.answer(&handle, &content, private, options.part).await {
                    Ok(sent) => return Ok(sent),
                    // Expired (15 minutes) or gone: the answer goes to the channel instead.
                    Err(e) if e.is_gone() => {
                        tracing::info!("discord: an interaction expired; answering in the channel")
                    }
                    Err(e) => return Err(e.into_channel("answer an interaction")),
                }
            }
        }
        let destination = match &options.visibility {
            Visibility::Private { user } if !self.is_direct(chat).await => self.open_direct(user).await?,
            _ => chat.clone(),
        };
        let mut body = json!({"content": content, "allowed_mentions": no_pings()});
        if let Some(reply_to) = options.reply_to.as_ref().filter(|_| destination == *chat) {
            body["message_reference"] = json!({"message_id": reply_to, "fail_if_not_exists": false});
        }
        if let Some(key) = &options.idempotency_key {
            body["nonce"] = json!(nonce(key));
            body["enforce_nonce"] = json!(true);
        }
        self.create(&destination, &body).await
    }

    /// Whether a chat is someone's direct chat with the bot (no guild).
    /// When that cannot be told, it is taken for a guild channel (a private
    /// notice then goes to the person's DM rather than being shown to a room).
    async fn is_direct(&self, chat: &ChatKey) -> bool {
        chat.thread.is_none()
            && self
                .places
                .resolve(self.rest, &chat.chat, None)
                .await
                .is_ok_and(|p| p.guild.is_none() && p.parent.is_none())
    }

    /// Through the interaction's webhook: the first public part edits the
    /// response; a private part is an ephemeral follow-up (the first one
    /// deleting the public "thinking" response, which cannot be made private).
    async fn answer(&self, handle: &Handle, content: &str, private: bool, part: usize) -> Result<SentRef, RestError> {
        self.acks.settled(&handle.interaction).await;
        let webhook = handle.webhook();
        let message = if !private {
            let body = json!({"content": content, "allowed_mentions": no_pings(), "components": []});
            self.rest.patch(&format!("{webhook}/messages/@original"), &body).await?
        } else {
            if part == 0 {
                match self.rest.delete(&format!("{webhook}/messages/@original")).await {
                    Err(e) if !e.is_gone() => return Err(e),
                    _ => {}
                }
            }
            let body = json!({"content": content, "allowed_mentions": no_pings(), "flags": EPHEMERAL});
            self.rest.post(&webhook, &body).await?
        };
        Ok(SentRef { message_id: message["id"].as_str().unwrap_or_default().to_string() })
    }

    async fn create(&self, chat: &ChatKey, body: &Value) -> Result<SentRef, ChannelError> {
        let sent = self
            .rest
            .post(&format!("/channels/{}/messages", target(chat)), body)
            .await
            .map_err(|e| e.into_channel("send a message"))?;
        match sent["id"].as_str() {
            Some(id) => Ok(SentRef { message_id: id.to_string() }),
            None => Err(ChannelError::Transient("discord: a sent message came back without an id".into())),
        }
    }

    /// Replaces a sent message's text (and removes any buttons).
    pub async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
        let body = json!({"content": render::content(part), "allowed_mentions": no_pings()});
        self.rest
            .patch(&format!("/channels/{}/messages/{}", target(chat), sent.message_id), &body)
            .await
            .map(|_| ())
            .map_err(|e| e.into_channel("edit a message"))
    }

    /// Shows "… is typing" for ten seconds.
    pub async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError> {
        self.rest
            .post_empty(&format!("/channels/{}/typing", target(chat)))
            .await
            .map(|_| ())
            .map_err(|e| e.into_channel("show typing"))
    }

    /// The question with its buttons; each button's `custom_id` is the gateway's
    /// opaque data (at most 100 characters, or the prompt is refused here).
    pub async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
        if let Some((label, _)) = prompt.buttons.iter().find(|(_, data)| data.is_empty() || data.len() > 100) {
            return Err(ChannelError::Rejected(format!(
                "discord: the {label:?} button's data does not fit a custom_id"
            )));
        }
        let buttons: Vec<Value> = prompt
            .buttons
            .iter()
            .enumerate()
            .map(|(i, (label, data))| {
                let style = match i {
                    0 => SUCCESS,
                    _ if i + 1 == prompt.buttons.len() => DANGER,
                    _ => PRIMARY,
                };
                let label: String = label.chars().take(80).collect();
                json!({"type": component::BUTTON, "style": style, "label": label, "custom_id": data})
            })
            .collect();
        let mut body = json!({"content": render::PROMPT.to_fit(&prompt.text), "allowed_mentions": no_pings()});
        if !buttons.is_empty() {
            body["components"] = json!([{"type": component::ACTION_ROW, "components": buttons}]);
        }
        self.create(chat, &body).await
    }

    /// The prompt's text becomes the outcome and its buttons go.
    pub async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
        let text = switchboard_channel_core::plain_blocks(outcome);
        let body = json!({"content": render::content(&text), "components": [], "allowed_mentions": no_pings()});
        self.rest
            .patch(&format!("/channels/{}/messages/{}", target(chat), sent.message_id), &body)
            .await
            .map(|_| ())
            .map_err(|e| e.into_channel("resolve an approval prompt"))
    }

    /// Ends an interaction: a notice goes privately to the person who triggered
    /// it; without one, a command's "thinking" response is removed (a press was
    /// acknowledged on arrival and needs nothing more).
    pub async fn close_interaction(&self, interaction: &Interaction, notice: Option<&str>) -> Result<(), ChannelError> {
        let handle = Handle::decode(&interaction.handle)?;
        self.acks.settled(&handle.interaction).await;
        let Some(text) = notice else {
            if handle.kind == Kind::Command {
                match self.rest.delete(&format!("{}/messages/@original", handle.webhook())).await {
                    Err(e) if !e.is_gone() => return Err(e.into_channel("close an interaction")),
                    _ => {}
                }
            }
            return Ok(());
        };
        let text = switchboard_channel_core::plain_blocks(text);
        let body = json!({"content": render::content(&text), "flags": EPHEMERAL, "allowed_mentions": no_pings()});
        match self.rest.post(&handle.webhook(), &body).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_gone() => {
                tracing::info!("discord: a notice for an expired button press dropped");
                Ok(())
            }
            Err(e) => Err(e.into_channel("answer a button press")),
        }
    }

    /// The direct chat with `user` (`discord:123` or `123`).
    pub async fn open_direct(&self, user: &str) -> Result<ChatKey, ChannelError> {
        let id = user.strip_prefix("discord:").unwrap_or(user);
        if !crate::config::is_snowflake(id) {
            return Err(ChannelError::Rejected(format!("discord: {user:?} is not a Discord user id")));
        }
        let channel = self
            .rest
            .post("/users/@me/channels", &json!({"recipient_id": id}))
            .await
            .map_err(|e| e.into_channel("open a direct chat"))?;
        let Some(chat) = channel["id"].as_str() else {
            return Err(ChannelError::Transient("discord: a direct chat came back without an id".into()));
        };
        self.places.learn_direct(chat);
        Ok(ChatKey { channel: crate::CHANNEL.into(), account: self.me.clone(), chat: chat.into(), thread: None })
    }
}

/// A nonce of at most 25 characters that is the same for the same key.
fn nonce(key: &str) -> String {
    if key.len() <= MAX_NONCE {
        return key.to_string();
    }
    // FNV-1a: stable across runs and builds (the default hasher is not).
    let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    format!("sb{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_fit_and_stay_the_same() {
        assert_eq!(nonce("sb-12-0"), "sb-12-0");
        let long = "sb-123456789012345678901234567890-0";
        assert_eq!(nonce(long), nonce(long));
        assert!(nonce(long).len() <= MAX_NONCE);
        assert_ne!(nonce(long), nonce("sb-123456789012345678901234567890-1"));
    }
}
