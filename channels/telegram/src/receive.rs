//! From update to gateway, shared by polling and the webhook: maps an update
//! (logging why one is skipped), hands it to the sink, and makes sure every
//! button press is answered within Telegram's patience whatever the gateway does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchboard_channel_core::{CommandSpec, DeliverError, InboundEvent, InboundKind, InboundSink};
use teloxide::payloads::AnswerCallbackQuerySetters;
use teloxide::requests::{Request, Requester};
use teloxide::types::{CallbackQueryId, Update, UpdateKind};

use crate::api::{Api, Policy};
use crate::inbound::{kind_name, map_update, Identity, Mapped};

/// How long a button press may wait for the gateway's answer before the adapter
/// closes it silently (the person's client shows a spinner until then, and
/// Telegram refuses answers to old queries).
const CLICK_DEADLINE: Duration = Duration::from_secs(8);

/// Callback queries delivered and not answered yet.
#[derive(Clone, Default)]
pub(crate) struct OpenCallbacks(Arc<Mutex<HashSet<String>>>);

impl OpenCallbacks {
    fn open(&self, id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned());
    }

    /// Whether `id` was open: only one answer per query, by whoever takes it first.
    pub fn take(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
    }
}

pub(crate) struct Receiver {
    pub api: Api,
    pub me: Identity,
    pub commands: &'static [CommandSpec],
    pub sink: Arc<dyn InboundSink>,
    pub callbacks: OpenCallbacks,
}

impl Receiver {
    /// The update as an event, or `None` (logged) when it is not for the gateway.
    pub fn map(&self, update: &Update) -> Option<InboundEvent> {
        match map_update(&self.me, self.commands, update) {
            Mapped::Event(event) => Some(*event),
            Mapped::Skip(reason) => {
                if matches!(update.kind, UpdateKind::Error(_)) {
                    tracing::warn!(update_id = update.id.0, reason, "telegram: skipping update");
                } else {
                    tracing::info!(
                        update_id = update.id.0,
                        kind = kind_name(update),
                        reason,
                        "telegram: skipping update"
                    );
                }
                None
            }
        }
    }

    /// Hands the event to the gateway. A press is marked open first (the gateway
    /// may answer it before `deliver` returns) and closed silently after the
    /// deadline if the gateway has not answered it by then.
    pub async fn deliver(&self, event: InboundEvent) -> Result<(), DeliverError> {
        let callback = match &event.kind {
            InboundKind::Click(click) => Some(click.interaction.handle.clone()),
            _ => None,
        };
        if let Some(id) = &callback {
            self.callbacks.open(id);
        }
        self.sink.deliver(event).await?;
        if let Some(id) = callback {
            let (api, callbacks) = (self.api.clone(), self.callbacks.clone());
            tokio::spawn(async move {
                tokio::time::sleep(CLICK_DEADLINE).await;
                if callbacks.take(&id) {
                    let result = api
                        .retry("answerCallbackQuery", Policy::ONCE, || {
                            api.bot.answer_callback_query(CallbackQueryId(id.clone())).send()
                        })
                        .await;
                    if let Err(err) = result {
                        tracing::debug!(error = %api.redactor.describe(&err), "telegram: late click answer failed");
                    }
                }
            });
        }
        Ok(())
    }
}

/// Answers a callback query the gateway is done with: silently, or with `notice`
/// as an alert. `Ok(false)` when the query was no longer open (already closed at
/// the deadline, or from before a restart), so the caller can fall back.
pub(crate) async fn answer(
    api: &Api,
    callbacks: &OpenCallbacks,
    id: &str,
    notice: Option<&str>,
) -> Result<bool, switchboard_channel_core::ChannelError> {
    if !callbacks.take(id) {
        return Ok(false);
    }
    let notice: Option<String> = notice.filter(|n| !n.is_empty()).map(short_notice);
    api.retry("answerCallbackQuery", Policy::ONCE, || {
        let mut request = api.bot.answer_callback_query(CallbackQueryId(id.to_owned())).show_alert(notice.is_some());
        if let Some(notice) = &notice {
            request = request.text(notice.clone());
        }
        request.send()
    })
    .await
    .map(|_| true)
    .map_err(|err| api.redactor.channel_error("answerCallbackQuery", &err))
}

/// Telegram shows at most 200 characters in a click notice.
fn short_notice(text: &str) -> String {
    const MAX_NOTICE_CHARS: usize = 200;
    if text.chars().count() <= MAX_NOTICE_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_NOTICE_CHARS - 1).collect();
    cut.push('…');
    cut
}
