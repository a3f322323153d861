//! Turns Telegram updates into the gateway's `InboundEvent`s (or says why one is skipped).

use std::ops::Range;

use switchboard_channel_core::commands::parse_text;
use switchboard_channel_core::{
    ChatKey, ChatKind, Click, Command, CommandSpec, Inbound, InboundEvent, InboundKind, Interaction, Sender,
};
use teloxide::types::{CallbackQuery, Message, MessageEntity, MessageEntityKind, Update, UpdateKind, User};

/// Who the bot is, from getMe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub id: u64,
    pub username: String,
}

/// What to do with one update.
#[derive(Debug)]
pub(crate) enum Mapped {
    Event(Box<InboundEvent>),
    /// Not for the gateway; the reason is safe to log (no message text).
    Skip(&'static str),
}

/// Maps one update; a typed `/name` of one of `commands` (for us) becomes a command.
pub(crate) fn map_update(me: &Identity, commands: &[CommandSpec], update: &Update) -> Mapped {
    let event_id = format!("telegram:{}:{}", me.id, update.id.0);
    let kind = match &update.kind {
        UpdateKind::Message(message) => match map_message(me, message) {
            Ok(inbound) => match as_command(me, commands, message, &inbound) {
                Some(command) => InboundKind::Command(command),
                None => InboundKind::Message(inbound),
            },
            Err(reason) => return Mapped::Skip(reason),
        },
        UpdateKind::CallbackQuery(query) => match map_click(me, query) {
            Ok(click) => InboundKind::Click(click),
            Err(reason) => return Mapped::Skip(reason),
        },
        UpdateKind::EditedMessage(_) => return Mapped::Skip("edits are not forwarded"),
        UpdateKind::MyChatMember(_) => return Mapped::Skip("membership change"),
        UpdateKind::Error(_) => return Mapped::Skip("malformed update"),
        _ => return Mapped::Skip("update kind not handled"),
    };
    Mapped::Event(Box::new(InboundEvent { event_id, kind }))
}

/// A short name of the update kind, for logs.
pub(crate) fn kind_name(update: &Update) -> &'static str {
    match &update.kind {
        UpdateKind::Message(_) => "message",
        UpdateKind::EditedMessage(_) => "edited_message",
        UpdateKind::CallbackQuery(_) => "callback_query",
        UpdateKind::MyChatMember(_) => "my_chat_member",
        UpdateKind::Error(_) => "malformed",
        _ => "other",
    }
}

fn map_message(me: &Identity, message: &Message) -> Result<Inbound, &'static str> {
    let from = message.from.as_ref().ok_or("message without a sender")?;
    if from.is_bot {
        return Err("message from a bot");
    }
    let (text, entities) = match (message.text(), message.caption()) {
        (Some(text), _) => (text, message.entities().unwrap_or_default()),
        (None, Some(caption)) => (caption, message.caption_entities().unwrap_or_default()),
        (None, None) => return Err("message without text"),
    };
    let addressed = read_entities(me, text, entities);
    let text = strip_ranges(text, &addressed.strip);
    let kind = if message.chat.is_private() { ChatKind::Direct } else { ChatKind::Group };
    Ok(Inbound {
        chat: chat_key(me, message),
        kind,
        sender: sender(from),
        text,
        mentions_bot: addressed.mentions_bot,
        reply_to_bot: replies_to_bot(me, message),
        message_id: message.id.0.to_string(),
        timestamp: u64::try_from(message.date.timestamp_millis()).unwrap_or_default(),
        space: None,
        interaction: None,
    })
}

/// The message as a command: it starts with a `bot_command` entity naming one of
/// `commands`, either bare or with our bot's name (which `inbound.text` no longer has).
fn as_command(me: &Identity, commands: &[CommandSpec], message: &Message, inbound: &Inbound) -> Option<Command> {
    let entities = message.entities().or(message.caption_entities()).unwrap_or_default();
    let first = entities.iter().find(|e| e.offset == 0 && matches!(e.kind, MessageEntityKind::BotCommand))?;
    let original = message.text().or(message.caption())?;
    let piece = &original[byte_range(original, first.offset, first.length)?];
    let addressed_to_us = match piece.split_once('@') {
        Some((_, bot)) if bot.eq_ignore_ascii_case(&me.username) => true,
        Some(_) => return None,
        // A bare command in a DM, or as a reply to one of our messages, is ours.
        None => inbound.kind == ChatKind::Direct || inbound.reply_to_bot,
    };
    let (spec, args) = parse_text(&inbound.text, commands)?;
    Some(Command {
        chat: inbound.chat.clone(),
        kind: inbound.kind,
        sender: inbound.sender.clone(),
        name: spec.name.to_string(),
        args,
        addressed: addressed_to_us,
        message_id: Some(inbound.message_id.clone()),
        interaction: None,
        timestamp: inbound.timestamp,
        space: None,
    })
}

fn map_click(me: &Identity, query: &CallbackQuery) -> Result<Click, &'static str> {
    let data = query.data.as_ref().ok_or("callback without data")?;
    let message = query.message.as_ref().ok_or("callback without a message")?;
    let thread = message.regular_message().and_then(topic_thread);
    let chat = ChatKey {
        channel: "telegram".to_owned(),
        account: me.id.to_string(),
        chat: message.chat().id.0.to_string(),
        thread,
    };
    Ok(Click {
        chat,
        sender: sender(&query.from),
        data: data.clone(),
        message_id: message.id().0.to_string(),
        interaction: Interaction { handle: query.id.0.clone() },
    })
}

fn chat_key(me: &Identity, message: &Message) -> ChatKey {
    ChatKey {
        channel: "telegram".to_owned(),
        account: me.id.to_string(),
        chat: message.chat.id.0.to_string(),
        thread: topic_thread(message),
    }
}

/// The forum topic; reply threads in ordinary groups are not topics.
fn topic_thread(message: &Message) -> Option<String> {
    message.thread_id.filter(|_| message.is_topic_message).map(|t| t.0 .0.to_string())
}

fn sender(user: &User) -> Sender {
    let name = match &user.last_name {
        Some(last) if !last.is_empty() => format!("{} {last}", user.first_name),
        _ => user.first_name.clone(),
    };
    Sender { id: format!("telegram:{}", user.id.0), name, is_bot: user.is_bot }
}

/// In a forum every message "replies" to the topic's first message; that is not
/// a reply to the bot.
fn replies_to_bot(me: &Identity, message: &Message) -> bool {
    let Some(replied) = message.reply_to_message() else { return false };
    let topic_root = message.is_topic_message && message.thread_id.is_some_and(|t| t.0 == replied.id);
    !topic_root && replied.from.as_ref().is_some_and(|u| u.id.0 == me.id)
}

#[derive(Default)]
struct Addressed {
    mentions_bot: bool,
    /// Byte ranges of "@username" suffixes of commands addressed to us.
    strip: Vec<Range<usize>>,
}

fn read_entities(me: &Identity, text: &str, entities: &[MessageEntity]) -> Addressed {
    let mut out = Addressed::default();
    for entity in entities {
        let Some(range) = byte_range(text, entity.offset, entity.length) else { continue };
        let piece = &text[range.clone()];
        match &entity.kind {
            MessageEntityKind::Mention
                if piece.strip_prefix('@').is_some_and(|name| name.eq_ignore_ascii_case(&me.username)) =>
            {
                out.mentions_bot = true;
            }
            MessageEntityKind::TextMention { user } if user.id.0 == me.id => out.mentions_bot = true,
            MessageEntityKind::BotCommand => {
                if let Some(at) = piece.find('@') {
                    if piece[at + 1..].eq_ignore_ascii_case(&me.username) {
                        out.mentions_bot = true;
                        out.strip.push(range.start + at..range.end);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The UTF-8 byte range of a UTF-16 `offset`/`length`, or `None` when it does
/// not fall on character boundaries inside `text` (a malformed entity).
fn byte_range(text: &str, offset: usize, length: usize) -> Option<Range<usize>> {
    let end16 = offset.checked_add(length)?;
    let (mut start, mut end) = (None, None);
    let mut units = 0;
    for (at, c) in text.char_indices().chain(std::iter::once((text.len(), '\0'))) {
        if units == offset {
            start = Some(at);
        }
        if units == end16 {
            end = Some(at);
            break;
        }
        if units > end16 {
            break;
        }
        units += c.len_utf16();
    }
    Some(start?..end?)
}

fn strip_ranges(text: &str, ranges: &[Range<usize>]) -> String {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in sorted {
        if range.start < at {
            continue;
        }
        out.push_str(&text[at..range.start]);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_map_to_byte_ranges_and_bad_ones_are_refused() {
        let text = "😀 /help@bot x";
        // The emoji is two UTF-16 units and four bytes.
        assert_eq!(byte_range(text, 3, 9), Some(5..14));
        assert_eq!(&text[5..14], "/help@bot");
        assert_eq!(byte_range(text, 1, 1), None, "inside a surrogate pair");
        assert_eq!(byte_range(text, 10, 50), None, "past the end");
        assert_eq!(byte_range("ab", 0, 2), Some(0..2));
    }

    #[test]
    fn commands_addressed_to_the_bot_lose_the_suffix() {
        let me = Identity { id: 1, username: "Bot_Name".into() };
        let text = "/help@bot_name now";
        let entities = [MessageEntity::new(MessageEntityKind::BotCommand, 0, 14)];
        let addressed = read_entities(&me, text, &entities);
        assert!(addressed.mentions_bot);
        assert_eq!(strip_ranges(text, &addressed.strip), "/help now");

        let other = read_entities(&me, "/help@other_bot", &[MessageEntity::new(MessageEntityKind::BotCommand, 0, 15)]);
        assert!(!other.mentions_bot && other.strip.is_empty());
    }
}
