//! A reply as it streams: one message, edited at most once per pace interval in
//! its chat, never with identical text; what does not fit one message waits for
//! the final reply.

use std::sync::Arc;
use std::time::Instant;

use switchboard_channel_core::markdown::{parse, to_plain};
use switchboard_channel_core::split::split;
use switchboard_channel_core::{Channel, ChannelError, ChatKey, Interaction, SendOptions, SentRef};

use super::outbox::Streamed;
use super::turn::TurnJob;
use super::turns::Turns;

pub struct Stream<'a> {
    turns: &'a Turns,
    channel: Arc<dyn Channel>,
    chat: ChatKey,
    event_id: Option<String>,
    reply_to: Option<String>,
    /// The interaction the first message answers.
    interaction: Option<Interaction>,
    /// Finished assistant messages of this turn.
    texts: Vec<String>,
    /// The message being written now.
    current: String,
    message: Option<SentRef>,
    shown: String,
    /// Whether previews are still shown (off once the platform cannot edit the
    /// message they go into).
    previews: bool,
    /// Streaming starts one interval into the turn: a quick reply arrives whole, as
    /// one message, instead of a fragment and an edit.
    not_before: Instant,
}

impl<'a> Stream<'a> {
    pub async fn new(turns: &'a Turns, channel: Arc<dyn Channel>, job: &TurnJob) -> Stream<'a> {
        // A replayed event continues the message its first attempt streamed into,
        // knowing what it shows (no edit that would change nothing).
        let streamed = match job.event_ids.first() {
            Some(id) if !job.first() => turns.journal.streamed(id).await,
            _ => None,
        };
        let (message, shown) = match streamed {
            Some(s) => (Some(s.sent), s.shown),
            None => (None, String::new()),
        };
        Stream {
            turns,
            channel,
            chat: job.chat.clone(),
            event_id: job.event_ids.first().cloned(),
            reply_to: job.reply_to.clone(),
            interaction: job.interaction.clone(),
            texts: Vec::new(),
            current: String::new(),
            message,
            shown,
            not_before: Instant::now() + turns.pacer.interval(&job.chat),
            previews: true,
        }
    }

    /// A finished assistant message.
    pub fn said(&mut self, content: String) {
        self.texts.push(content);
        self.current.clear();
    }

    /// Everything the agent finished saying this turn.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// The message the reply streamed into, if any, and what it shows.
    pub fn streamed(&self) -> Option<Streamed> {
        self.message.clone().map(|sent| Streamed { sent, shown: self.shown.clone() })
    }

    /// Whether the streamed message already shows exactly `text`, whole.
    pub fn shows_exactly(&self, text: &str) -> bool {
        if self.message.is_none() || text.trim().is_empty() {
            return false;
        }
        let caps = self.channel.capabilities();
        let parts = split(&parse(text.trim()), caps.max_message_len, caps.length_unit);
        parts.len() == 1 && to_plain(&parts[0]) == self.shown
    }

    /// More text of the message being written; shown if the pace allows.
    pub async fn push(&mut self, delta: &str) {
        self.current.push_str(delta);
        let caps = self.channel.capabilities();
        // Cheap checks first: rendering the whole reply on every delta of a long
        // answer would be quadratic, and most deltas fall between edits.
        if !caps.can_edit || !self.previews || Instant::now() < self.not_before || !self.turns.pacer.due(&self.chat) {
            return;
        }
        let mut all = self.texts.clone();
        all.push(self.current.clone());
        let text = all.join("\n\n");
        // While streaming, show what fits one message; the final reply adds the rest.
        let Some(first) = split(&parse(text.trim()), caps.max_message_len, caps.length_unit).into_iter().next() else {
            return;
        };
        let shown = to_plain(&first);
        if shown == self.shown || !self.turns.pacer.take(&self.chat) {
            return;
        }
        let outcome = match &self.message {
            None => {
                let options = SendOptions {
                    reply_to: self.reply_to.clone(),
                    interaction: self.interaction.clone(),
                    ..SendOptions::default()
                };
                self.channel.send(&self.chat, &first, &options).await.map(Some)
            }
            Some(sent) => self.channel.edit(&self.chat, sent, &first).await.map(|_| None),
        };
        let edited = match outcome {
            Ok(Some(sent)) => {
                self.message = Some(sent);
                true
            }
            Ok(None) => true,
            // Skipped; the next delta or the final reply catches up.
            Err(ChannelError::RateLimited(wait)) => {
                self.turns.pacer.hold(&self.chat, wait);
                false
            }
            Err(ChannelError::Transient(_)) => false,
            Err(ChannelError::Rejected(why)) => {
                tracing::debug!(reason = %why, "streaming edit refused; the final reply will be sent anew");
                self.message = None;
                false
            }
            // A message that cannot be edited (an answer through a slash
            // command's response URL): no more previews, or each would be a new
            // message; the final reply follows once.
            Err(ChannelError::Unsupported(_)) => {
                self.message = None;
                self.previews = false;
                false
            }
        };
        if edited {
            self.shown = shown;
            // Noted (about once per pace interval), so a replay after a crash
            // finishes this message and edits it only to change it; with
            // replicas, under the chat's lease (a replica that lost the chat
            // notes nothing).
            if let (Some(event), Some(sent)) = (&self.event_id, &self.message) {
                match self.turns.owners.fence(&self.chat.id()) {
                    Ok(fence) => {
                        let _ =
                            self.turns.journal.set_stream_message(event, sent.clone(), self.shown.clone(), fence).await;
                    }
                    Err(_) => tracing::debug!("the chat's lease is not held here now: the streamed message not noted"),
                }
            }
        }
    }
}
