//! Approval prompts as an inline keyboard, and replacing them with the outcome.

use switchboard_channel_core::{ApprovalPrompt, ChannelError, ChatKey, LengthUnit, PromptRendering, SentRef};
use teloxide::payloads::{EditMessageReplyMarkup, EditMessageReplyMarkupSetters};
use teloxide::requests::{JsonRequest, Request};
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use crate::api::{message_id, target, Api, Policy};
use crate::errors::is_not_modified;
use crate::outbound::{edit_text, send_text, Text, Unread};

/// Telegram's limit for callback data, in bytes.
pub const MAX_CALLBACK_DATA: usize = 64;

/// One row of buttons; data that Telegram would refuse is rejected here, with its label.
pub(crate) fn keyboard(buttons: &[(String, String)]) -> Result<InlineKeyboardMarkup, ChannelError> {
    let mut row = Vec::with_capacity(buttons.len());
    for (label, data) in buttons {
        if data.is_empty() || data.len() > MAX_CALLBACK_DATA {
            return Err(ChannelError::Rejected(format!(
                "telegram: button {label:?} carries {} bytes of data; Telegram allows 1-{MAX_CALLBACK_DATA}",
                data.len()
            )));
        }
        if label.trim().is_empty() {
            return Err(ChannelError::Rejected("telegram: a button has an empty label".to_owned()));
        }
        row.push(InlineKeyboardButton::callback(label.clone(), data.clone()));
    }
    Ok(InlineKeyboardMarkup::new([row]))
}

pub(crate) async fn show(api: &Api, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError> {
    let to = target(chat)?;
    let markup = keyboard(&prompt.buttons)?;
    let markup = (!prompt.buttons.is_empty()).then_some(markup);
    // Whole whenever the gateway was told it fits (`Channel::shows_whole`: the
    // same limit, on plain text).
    let plain = PromptRendering { max: crate::api::MAX_TEXT_UTF16, unit: LengthUnit::Utf16, render: str::to_string };
    let text = plain.to_fit(&prompt.text);
    send_text(api, to, &Text::plain(&text), None, markup.as_ref())
        .await
        .map_err(|err| api.redactor.channel_error("sendMessage", &err))
}

/// Replaces the prompt's text with `outcome`; editing without a keyboard removes the buttons.
pub(crate) async fn resolve(api: &Api, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError> {
    let to = target(chat)?;
    let id = message_id(&sent.message_id, "message id")?;
    if !outcome.trim().is_empty() {
        return edit_text(api, to, id, &Text::plain(outcome))
            .await
            .map_err(|err| api.redactor.channel_error("editMessageText", &err));
    }
    // Telegram refuses an empty text: just drop the buttons.
    let result = api
        .retry("editMessageReplyMarkup", Policy::ONCE, || {
            let payload = EditMessageReplyMarkup::new(to.chat, id).reply_markup(InlineKeyboardMarkup::default());
            JsonRequest::new(api.bot.clone(), Unread(payload)).send()
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_not_modified(&err) => Ok(()),
        Err(err) => Err(api.redactor.channel_error("editMessageReplyMarkup", &err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_longer_than_64_bytes_is_rejected_naming_the_button() {
        let ok = vec![("Yes".to_owned(), "a".repeat(64))];
        assert_eq!(keyboard(&ok).expect("fits").inline_keyboard[0].len(), 1);
        let long = vec![("Always".to_owned(), "é".repeat(33))];
        let err = keyboard(&long).expect_err("66 bytes").to_string();
        assert!(err.contains("Always") && err.contains("66"), "{err}");
    }
}
