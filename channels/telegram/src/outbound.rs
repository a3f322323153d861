//! Sending and editing replies (HTML with a plain-text fallback) and typing. One
//! attempt each: the gateway's outbox owns retries.

use serde::{Deserialize, Serialize};
use switchboard_channel_core::markdown::{to_plain, Block};
use switchboard_channel_core::{ChannelError, ChatKey, SendOptions, SentRef};
use teloxide::payloads::{
    EditMessageText, EditMessageTextSetters, SendChatActionSetters, SendMessage, SendMessageSetters,
};
use teloxide::requests::{JsonRequest, Payload, Request, Requester};
use teloxide::types::{ChatAction, InlineKeyboardMarkup, LinkPreviewOptions, MessageId, ParseMode, ReplyParameters};
use teloxide::RequestError;

use crate::api::{message_id, target, truncate_utf16, Api, Policy, Target, MAX_TEXT_UTF16};
use crate::errors::{is_cant_parse_entities, is_not_modified};
use crate::render::to_html;

/// One message's text as Telegram should parse it.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    pub body: String,
    /// `Some(Html)` or plain.
    pub parse_mode: Option<ParseMode>,
}

impl Text {
    pub fn html(part: &[Block]) -> Text {
        Text { body: to_html(part), parse_mode: Some(ParseMode::Html) }
    }

    /// Plain text; the plain rendering adds link addresses, so it may need cutting.
    pub fn plain(text: &str) -> Text {
        Text { body: truncate_utf16(text, MAX_TEXT_UTF16), parse_mode: None }
    }
}

fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

/// One sendMessage; the raw teloxide error on failure.
pub(crate) async fn send_text(
    api: &Api,
    to: Target,
    text: &Text,
    reply_to: Option<MessageId>,
    keyboard: Option<&InlineKeyboardMarkup>,
) -> Result<SentRef, RequestError> {
    let sent = api
        .retry("sendMessage", Policy::ONCE, || {
            let mut payload = SendMessage::new(to.chat, text.body.clone()).link_preview_options(no_preview());
            if let Some(mode) = text.parse_mode {
                payload = payload.parse_mode(mode);
            }
            if let Some(thread) = to.thread {
                payload = payload.message_thread_id(thread);
            }
            if let Some(id) = reply_to {
                payload = payload.reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
            }
            if let Some(keyboard) = keyboard {
                payload = payload.reply_markup(keyboard.clone());
            }
            JsonRequest::new(api.bot.clone(), SendText(payload)).send()
        })
        .await?;
    Ok(SentRef { message_id: sent.message_id.to_string() })
}

/// `sendMessage` that reads only the new message's id from Telegram's answer.
/// teloxide would build the whole `Message` (trying each kind of media in turn,
/// each failure a formatted error), the costliest step of a send, for one field.
/// Errors and their classification are teloxide's, as for every other call.
#[derive(Clone, Serialize)]
#[serde(transparent)]
struct SendText(SendMessage);

impl Payload for SendText {
    type Output = SentId;
    const NAME: &'static str = <SendMessage as Payload>::NAME;
}

/// What [`SendText`] reads of the sent message (a number: teloxide's `MessageId`
/// reads itself from a whole `{"message_id": n}` object).
#[derive(Debug, Deserialize)]
struct SentId {
    message_id: i32,
}

/// A call (an edit) whose answer is read no further than that it succeeded:
/// an edit needs no field of the edited message, and teloxide would build the
/// whole `Message` (the costliest step, as for [`SendText`]) on every edit of a
/// streamed reply, and refuse one with a kind of chat newer than it knows.
/// Errors are teloxide's, as for every other call.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct Unread<P>(pub P);

impl<P: Payload> Payload for Unread<P> {
    type Output = Succeeded;
    const NAME: &'static str = P::NAME;
}

/// A successful answer, read past whatever it holds (the message, or `true`
/// for an inline message).
#[derive(Debug, Deserialize)]
pub(crate) struct Succeeded(#[allow(dead_code)] serde::de::IgnoredAny);

/// One editMessageText. Without a keyboard, Telegram removes any the message
/// had. "Not modified" is success.
pub(crate) async fn edit_text(api: &Api, to: Target, id: MessageId, text: &Text) -> Result<(), RequestError> {
    let result = api
        .retry("editMessageText", Policy::ONCE, || {
            let mut payload = EditMessageText::new(to.chat, id, text.body.clone()).link_preview_options(no_preview());
            if let Some(mode) = text.parse_mode {
                payload = payload.parse_mode(mode);
            }
            JsonRequest::new(api.bot.clone(), Unread(payload)).send()
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_not_modified(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

pub(crate) async fn send(
    api: &Api,
    chat: &ChatKey,
    part: &[Block],
    options: &SendOptions,
) -> Result<SentRef, ChannelError> {
    // Telegram has no ephemeral messages, and its commands are messages: a private
    // answer is a reply in the chat, and there is no interaction to answer.
    let to = target(chat)?;
    let reply_to = options.reply_to.as_deref().and_then(|raw| match message_id(raw, "reply_to") {
        Ok(id) => Some(id),
        Err(_) => {
            tracing::warn!(reply_to = raw, "telegram: not a message id; sending without a reply");
            None
        }
    });
    match send_text(api, to, &Text::html(part), reply_to, None).await {
        Ok(sent) => Ok(sent),
        Err(err) if is_cant_parse_entities(&err) => {
            // Telegram's description may quote part of the text: not logged.
            tracing::warn!(chat = %chat.id(), "telegram: HTML rejected; sending as plain text");
            send_text(api, to, &Text::plain(&to_plain(part)), reply_to, None)
                .await
                .map_err(|err| api.redactor.channel_error("sendMessage", &err))
        }
        Err(err) => Err(api.redactor.channel_error("sendMessage", &err)),
    }
}

pub(crate) async fn edit(api: &Api, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError> {
    let to = target(chat)?;
    let id = message_id(&sent.message_id, "message id")?;
    match edit_text(api, to, id, &Text::html(part)).await {
        Ok(()) => Ok(()),
        Err(err) if is_cant_parse_entities(&err) => {
            tracing::warn!(chat = %chat.id(), "telegram: HTML rejected; editing as plain text");
            edit_text(api, to, id, &Text::plain(&to_plain(part)))
                .await
                .map_err(|err| api.redactor.channel_error("editMessageText", &err))
        }
        Err(err) => Err(api.redactor.channel_error("editMessageText", &err)),
    }
}

pub(crate) async fn typing(api: &Api, chat: &ChatKey) -> Result<(), ChannelError> {
    let to = target(chat)?;
    let result = api
        .retry("sendChatAction", Policy::ONCE, || {
            let mut request = api.bot.send_chat_action(to.chat, ChatAction::Typing);
            if let Some(thread) = to.thread {
                request = request.message_thread_id(thread);
            }
            request.send()
        })
        .await;
    result.map(|_| ()).map_err(|err| {
        tracing::debug!(chat = %chat.id(), error = %api.redactor.describe(&err), "telegram: typing failed");
        api.redactor.channel_error("sendChatAction", &err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::ChatId;

    /// A sent message that teloxide's `Message` refuses (the assertion below shows
    /// it does) still gives its id: the send succeeded, and taking it for a
    /// failure would send the reply again.
    #[test]
    fn a_send_reads_only_the_message_id_from_the_answer() {
        let answer =
            r#"{"message_id": 42, "date": 0, "chat": {"id": 1, "type": "a kind of chat from a newer Bot API"}}"#;
        assert_eq!(serde_json::from_str::<SentId>(answer).expect("read").message_id, 42);
        assert!(serde_json::from_str::<teloxide::types::Message>(answer).is_err(), "teloxide would refuse it");
        assert!(serde_json::from_str::<SentId>(r#"{"date": 0}"#).is_err(), "an answer without an id is not a send");
    }

    /// An edit's answer is read past whatever Telegram says the message is, or
    /// `true`. (An error answer has no `result` and `ok: false`, so it never
    /// reads as one: the channel tests against the fake Bot API cover "not
    /// modified" and "can't parse entities".)
    #[test]
    fn an_edit_reads_nothing_of_the_answer() {
        let message =
            r#"{"message_id": 42, "date": 0, "chat": {"id": 1, "type": "a kind of chat from a newer Bot API"}}"#;
        assert!(serde_json::from_str::<Succeeded>(message).is_ok());
        assert!(serde_json::from_str::<Succeeded>("true").is_ok());
        assert!(serde_json::from_str::<teloxide::types::Message>(message).is_err(), "teloxide would refuse it");
    }

    /// The edit is teloxide's `editMessageText`, field for field.
    #[test]
    fn the_lean_edit_is_the_same_request() {
        let payload = EditMessageText::new(ChatId(5), MessageId(9), "hi")
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_preview());
        assert_eq!(Unread::<EditMessageText>::NAME, "EditMessageText");
        assert_eq!(
            serde_json::to_value(Unread(payload.clone())).expect("json"),
            serde_json::to_value(payload).expect("json")
        );
    }

    /// The request is teloxide's `sendMessage`, field for field.
    #[test]
    fn the_lean_send_is_the_same_request() {
        let payload = SendMessage::new(ChatId(5), "hi").parse_mode(ParseMode::Html).link_preview_options(no_preview());
        assert_eq!(SendText::NAME, "SendMessage");
        assert_eq!(
            serde_json::to_value(SendText(payload.clone())).expect("json"),
            serde_json::to_value(payload).expect("json")
        );
    }
}
