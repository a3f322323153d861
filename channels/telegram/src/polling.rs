//! The getUpdates loop: delivers updates in order, acknowledges them (by moving the
//! offset) only after the sink journaled them, and backs off on conflicts and errors.
//! Each chat's updates go to the sink one after another, in order; the chats of a
//! batch go side by side, so their journal writes share flushes instead of
//! waiting for one each.

use std::sync::Arc;
use std::time::Duration;

use switchboard_channel_core::InboundEvent;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::requests::{Request, Requester};
use teloxide::types::{AllowedUpdate, Update};
use teloxide::RequestError;
use tokio::sync::watch;

use crate::api::Api;
use crate::errors::{classify, conflict, is_invalid_token, Class, Conflict};
use crate::receive::Receiver;
use crate::status::{Health, HealthCell};

/// What we ask Telegram for, in polling and webhook mode alike.
pub(crate) const ALLOWED_UPDATES: [AllowedUpdate; 4] =
    [AllowedUpdate::Message, AllowedUpdate::EditedMessage, AllowedUpdate::CallbackQuery, AllowedUpdate::MyChatMember];

/// A poll not answered this long after its own timeout is abandoned: the
/// connection went silent (a proxy or NAT dropped it) and would never answer.
const POLL_GRACE: Duration = Duration::from_secs(5);

/// Retry delays for a failing `sink.deliver`.
const DELIVER_FIRST_DELAY: Duration = Duration::from_millis(200);
const DELIVER_MAX_DELAY: Duration = Duration::from_secs(5);

/// Resolves once `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Sleeps for `wait`; false if stopped first.
async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stopped(stop) => false,
    }
}

pub(crate) struct PollLoop {
    pub api: Api,
    pub receiver: Arc<Receiver>,
    pub health: HealthCell,
    pub timeout_secs: u32,
    pub stop: watch::Receiver<bool>,
}

impl PollLoop {
    pub async fn run(mut self) {
        let mut offset: Option<i32> = None;
        let mut trouble = Trouble::default();
        self.health.set(Health::Polling);
        loop {
            if *self.stop.borrow() {
                break;
            }
            // After a failure, a short poll tells at once whether we are back.
            let timeout = if trouble.active() { 0 } else { self.timeout_secs };
            let mut request = self.api.bot.get_updates().timeout(timeout).allowed_updates(ALLOWED_UPDATES);
            if let Some(offset) = offset {
                request = request.offset(offset);
            }
            let limit = Duration::from_secs(timeout.into()) + POLL_GRACE;
            let result = tokio::select! {
                result = tokio::time::timeout(limit, request.send()) => result,
                _ = stopped(&mut self.stop) => break,
            };
            let updates = match result {
                Ok(Ok(updates)) => updates,
                Ok(Err(err)) => {
                    let wait = trouble.record(&err, &self.api, &self.health);
                    if !pause(&mut self.stop, wait).await {
                        break;
                    }
                    continue;
                }
                Err(_) => {
                    // Polled again at once (a short poll, as after any failure).
                    trouble.silent(&self.health);
                    continue;
                }
            };
            self.health.polled();
            if trouble.active() {
                tracing::info!("telegram: polling works again");
                trouble = Trouble::default();
            }
            self.health.set(Health::Polling);
            let Some(last) = updates.last().map(|update| update.id.0) else { continue };
            if !self.deliver_batch(&updates).await {
                return;
            }
            // Every update of the batch is journaled (or skipped): acknowledged.
            offset = Some(i32::try_from(u64::from(last) + 1).unwrap_or(i32::MAX));
        }
        tracing::debug!("telegram: poll loop stopped");
    }

    /// Delivers a batch (retrying each update until the sink takes it): each
    /// chat's updates in order, the chats side by side. False if stopped first;
    /// then the batch is polled again, and what was journaled is recognised.
    async fn deliver_batch(&self, updates: &[Update]) -> bool {
        let delivered = futures::future::join_all(by_chat(&self.receiver, updates).into_iter().map(|chat| {
            let mut stop = self.stop.clone();
            async move {
                for (update_id, event) in chat {
                    if !deliver_until_ok(&self.receiver, event, update_id, &mut stop).await {
                        return false;
                    }
                }
                true
            }
        }))
        .await;
        delivered.into_iter().all(|ok| ok)
    }
}

/// The batch's events grouped by chat, each chat's in the batch's order (updates
/// that carry no event are left out).
fn by_chat(receiver: &Receiver, updates: &[Update]) -> Vec<Vec<(u32, InboundEvent)>> {
    let mut chats: Vec<Vec<(u32, InboundEvent)>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for update in updates {
        let Some(event) = receiver.map(update) else { continue };
        let at = *index.entry(event.kind.chat().clone()).or_insert_with(|| {
            chats.push(Vec::new());
            chats.len() - 1
        });
        chats[at].push((update.id.0, event));
    }
    chats
}

/// Hands `event` to the sink until it returns Ok, backing off between tries.
/// The update is never skipped; false if stopped first.
async fn deliver_until_ok(
    receiver: &Receiver,
    event: InboundEvent,
    update_id: u32,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut delay = DELIVER_FIRST_DELAY;
    let mut failures = 0u32;
    loop {
        match receiver.deliver(event.clone()).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(update_id, failures, "telegram: update delivered after retries");
                }
                return true;
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(update_id, %error, "telegram: the gateway did not take the update; retrying");
                } else {
                    tracing::debug!(update_id, failures, %error, "telegram: delivery still failing");
                }
            }
        }
        if !pause(stop, delay).await {
            return false;
        }
        delay = (delay * 2).min(DELIVER_MAX_DELAY);
    }
}

/// A streak of failed getUpdates calls of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streak {
    Conflict(Conflict),
    RateLimited,
    Transient,
    Rejected,
}

#[derive(Default)]
struct Trouble {
    streak: Option<Streak>,
    /// The next wait of the current streak.
    delay: Duration,
}

impl Trouble {
    fn active(&self) -> bool {
        self.streak.is_some()
    }

    /// Notes a poll that never answered: a transient failure, retried at once.
    fn silent(&mut self, health: &HealthCell) {
        if self.streak != Some(Streak::Transient) {
            tracing::warn!("telegram: getUpdates did not answer; polling again");
            self.delay = Duration::from_secs(1);
        }
        self.streak = Some(Streak::Transient);
        health.set(Health::Retrying("Telegram stopped answering".to_owned()));
    }

    /// Notes a failed poll, updates the health, warns once per streak and
    /// returns how long to wait before the next poll.
    fn record(&mut self, err: &RequestError, api: &Api, health: &HealthCell) -> Duration {
        let (streak, first, max) = match (conflict(err), classify(err)) {
            (Some(kind), _) => (Streak::Conflict(kind), Duration::from_secs(5), Duration::from_secs(60)),
            (None, Class::RateLimited(wait)) => (Streak::RateLimited, wait, wait),
            (None, Class::Transient) => (Streak::Transient, Duration::from_secs(1), Duration::from_secs(30)),
            (None, Class::Rejected) if is_invalid_token(err) => {
                (Streak::Rejected, Duration::from_secs(60), Duration::from_secs(60))
            }
            (None, Class::Rejected) => (Streak::Rejected, Duration::from_secs(5), Duration::from_secs(60)),
        };
        let wait = if self.streak == Some(streak) && streak != Streak::RateLimited {
            self.delay
        } else {
            let description = api.redactor.describe(err);
            match streak {
                Streak::Conflict(_) => tracing::warn!(
                    error = %description,
                    "telegram: getUpdates conflict: another process uses this bot token; backing off"
                ),
                _ => tracing::warn!(error = %description, "telegram: getUpdates failed; backing off"),
            }
            first
        };
        self.streak = Some(streak);
        self.delay = (wait * 2).min(max);
        health.set(match streak {
            Streak::Conflict(kind) => Health::Conflict(kind),
            Streak::RateLimited => Health::Retrying("rate limited by Telegram".to_owned()),
            // The health line reaches people (`/status`): a plain reason; the log has the detail.
            Streak::Transient => Health::Retrying("cannot reach Telegram".to_owned()),
            Streak::Rejected if is_invalid_token(err) => Health::Retrying("Telegram rejected the bot token".to_owned()),
            Streak::Rejected => Health::Retrying("Telegram refused to send updates".to_owned()),
        });
        wait
    }
}
