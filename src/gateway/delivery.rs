//! Delivering replies through the outbox. A reply is stored before anything is
//! sent, then the event it answers is marked answered, so a crash loses nothing.
//! (A crash between those two writes both resends the reply and replays the
//! event; closing that window is the delivery issue's.) One owner sends an item
//! at a time, always from the stored copy: whoever claims it (a turn, a command,
//! the retry loop, recovery) re-reads it, sends what is left within the retry
//! budget, and marks each part as it goes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use switchboard_channel_core::markdown::parse;
use switchboard_channel_core::split::split;
use switchboard_channel_core::{ChannelError, ChatKey, SentRef};

use super::journal::Journal;
use super::outbox::{Outbound, Outbox, OutboxItem};
use super::pacing::Pacer;
use super::registry::Registry;
use super::retry;
use crate::store::now_ms;

#[derive(Clone)]
pub struct Delivery {
    outbox: Outbox,
    journal: Journal,
    registry: Registry,
    pacer: Pacer,
    /// Items someone is sending right now.
    busy: Arc<Mutex<HashSet<u64>>>,
}

/// Releases an item's claim however the sending ends.
struct Claim<'a> {
    busy: &'a Mutex<HashSet<u64>>,
    seq: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.seq);
    }
}

impl Delivery {
    pub fn new(outbox: Outbox, journal: Journal, registry: Registry, pacer: Pacer) -> Delivery {
        Delivery { outbox, journal, registry, pacer, busy: Arc::default() }
    }

    /// Stores `message` and marks `answers` (a journal event) answered, then sends
    /// it in the background. For command answers and notices.
    pub async fn reply(&self, chat: &ChatKey, message: Outbound, answers: Option<&str>) {
        if let Some(seq) = self.store(chat, message, None, answers).await {
            let delivery = self.clone();
            tokio::spawn(async move { delivery.deliver(seq).await });
        }
    }

    /// Stores a turn's final reply (replacing the message it streamed into, if
    /// any), marks `answers` answered, then sends it when the chat's pace allows.
    pub async fn finish_turn(
        &self,
        chat: &ChatKey,
        message: Outbound,
        streamed: Option<SentRef>,
        answers: Option<&str>,
    ) {
        if let Some(seq) = self.store(chat, message, streamed, answers).await {
            self.pacer.wait(chat).await;
            self.deliver(seq).await;
        }
    }

    /// Marks an event answered when there is nothing to send for it.
    pub async fn nothing_to_send(&self, answers: Option<&str>) {
        if let Some(event) = answers {
            if let Err(e) = self.journal.done(event).await {
                tracing::error!(error = %e, "cannot mark a message answered");
            }
        }
    }

    async fn store(
        &self,
        chat: &ChatKey,
        message: Outbound,
        streamed: Option<SentRef>,
        answers: Option<&str>,
    ) -> Option<u64> {
        let item = match self.outbox.enqueue(chat.clone(), message, streamed).await {
            Ok(item) => item,
            Err(e) => {
                // The event stays unanswered and is replayed after a restart.
                tracing::error!(error = %e, "cannot store a reply");
                return None;
            }
        };
        self.nothing_to_send(answers).await;
        Some(item.seq)
    }

    /// Sends what is left of item `seq`, unless someone else is sending it.
    pub async fn deliver(&self, seq: u64) {
        if !self.busy.lock().unwrap_or_else(|p| p.into_inner()).insert(seq) {
            return;
        }
        let _claim = Claim { busy: &self.busy, seq };
        // The stored copy, never one read before the claim: it may be delivered by now.
        let item = match self.outbox.get(seq).await {
            Ok(Some(item)) => item,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        if let Err(e) = self.send_rest(item).await {
            tracing::error!(error = %e, "cannot update the outbox");
        }
    }

    async fn send_rest(&self, mut item: OutboxItem) -> crate::store::StoreResult<()> {
        let Some(channel) = self.registry.channel(&item.chat.channel) else {
            // Its channel is not configured in this run: kept for a run that has it.
            return Ok(());
        };
        let caps = channel.capabilities();
        let parts = split(&parse(&item.message.text), caps.max_message_len, caps.length_unit);
        while item.delivered_parts < parts.len() {
            let index = item.delivered_parts;
            let part = &parts[index];
            let options = item.message.options(index);
            let streamed = item.stream_message.clone().filter(|_| index == 0 && caps.can_edit);
            let sent = match streamed {
                Some(streamed) => match retry::round(|| channel.edit(&item.chat, &streamed, part)).await {
                    Ok(()) => Ok(()),
                    // The streamed message is gone or cannot be edited: send anew.
                    Err(ChannelError::Rejected(_) | ChannelError::Unsupported(_)) => {
                        retry::round(|| channel.send(&item.chat, part, &options)).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                },
                None => retry::round(|| channel.send(&item.chat, part, &options)).await.map(|_| ()),
            };
            match sent {
                Ok(()) => {
                    item.delivered_parts += 1;
                    self.outbox.mark(&item).await?;
                }
                Err(e @ (ChannelError::Rejected(_) | ChannelError::Unsupported(_))) => {
                    // The platform will never take it (blocked bot, deleted chat).
                    tracing::warn!(chat = %item.chat.id(), error = %e, "reply refused by the platform; dropped");
                    break;
                }
                Err(e) => {
                    if let ChannelError::RateLimited(wait) = e {
                        self.pacer.hold(&item.chat, wait);
                    }
                    tracing::warn!(chat = %item.chat.id(), error = %e, "reply not delivered yet; kept for a retry");
                    return Ok(());
                }
            }
        }
        self.outbox.remove(item.seq).await
    }

    /// Sends every undelivered reply of channel `name` (after a restart), each
    /// in the background.
    pub async fn recover(&self, name: &str) -> crate::store::StoreResult<usize> {
        let items: Vec<u64> =
            self.outbox.pending().await?.into_iter().filter(|i| i.chat.channel == name).map(|i| i.seq).collect();
        for &seq in &items {
            let delivery = self.clone();
            tokio::spawn(async move { delivery.deliver(seq).await });
        }
        Ok(items.len())
    }

    /// Gives undelivered replies a new round every `retry::RETRY_EVERY`, each in
    /// its own task (a stuck channel holds up no other), and drops those older
    /// than `retry::GIVE_UP_AFTER`. Runs until aborted.
    pub async fn retry_loop(self) {
        loop {
            tokio::time::sleep(retry::RETRY_EVERY).await;
            let Ok(items) = self.outbox.pending().await else { continue };
            let cutoff = now_ms().saturating_sub(retry::GIVE_UP_AFTER.as_millis() as u64);
            for item in items {
                if item.created_at != 0 && item.created_at < cutoff {
                    tracing::warn!(chat = %item.chat.id(), "a reply undelivered for a day was dropped");
                    let _ = self.outbox.remove(item.seq).await;
                    continue;
                }
                let delivery = self.clone();
                tokio::spawn(async move { delivery.deliver(item.seq).await });
            }
        }
    }
}
