//! getUpdates (offsets, long polling, allowed_updates) and the webhook methods.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::params::Params;
use super::state::{Shared, State, Webhook};
use super::wire::{ApiError, ApiResult};

const WEBHOOK_ACTIVE: &str =
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// Telegram caps long polls at 50 seconds.
const MAX_POLL_SECS: u64 = 50;

/// What Telegram answers a poll that a newer one replaced.
const TERMINATED: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

/// A getUpdates call under way, counted until it answers or is dropped (its
/// connection closed).
struct Active<'a>(&'a Shared);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.lock().polls_active -= 1;
    }
}

pub async fn get_updates(shared: &Shared, params: &Params) -> ApiResult {
    let limit = params.i64("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = params.i64("timeout").unwrap_or(0).clamp(0, MAX_POLL_SECS as i64) as u64;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    // Subscribe before the first look so an update injected in between still wakes us.
    let mut wake = shared.subscribe();
    let generation = {
        let mut state = shared.lock();
        if state.webhook.is_some() {
            return Err(ApiError::new(409, WEBHOOK_ACTIVE));
        }
        // Like Telegram: one poller per bot; a second call ends the first.
        if state.polls_active > 0 {
            state.concurrent_polls += 1;
        }
        state.polls_active += 1;
        state.poll_generation += 1;
        state.poll_generation
    };
    let _active = Active(shared);
    shared.wake_polls();
    {
        let mut state = shared.lock();
        if let Some(offset) = params.i64("offset") {
            confirm(&mut state, offset);
        }
        if let Some(Value::Array(kinds)) = params.json("allowed_updates") {
            state.allowed_updates = Some(kinds.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
        }
    }
    loop {
        wake.borrow_and_update();
        if shared.lock().poll_generation != generation {
            return Err(ApiError::new(409, TERMINATED));
        }
        if shared.lock().polls_silent {
            // A dead connection: nothing comes back, not even at the deadline.
            return std::future::pending().await;
        }
        let updates = deliverable(&shared.lock(), limit);
        if !updates.is_empty() {
            return Ok(Value::Array(updates));
        }
        // A closed channel means the server is going away: answer what we have.
        match tokio::time::timeout_at(deadline, wake.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(json!([])),
        }
    }
}

/// Positive offsets forget lower ids; `-n` keeps only the last `n` pending updates.
fn confirm(state: &mut State, offset: i64) {
    if offset < 0 {
        let pending: Vec<i64> = state.pending().map(|u| u.id).collect();
        let keep = offset.unsigned_abs() as usize;
        if pending.len() > keep {
            state.confirmed_offset = pending[pending.len() - keep];
        }
    } else if offset > state.confirmed_offset {
        state.confirmed_offset = offset;
    }
}

/// Pending updates of the allowed kinds, oldest first.
fn deliverable(state: &State, limit: usize) -> Vec<Value> {
    let allowed = state.allowed_updates.as_ref().filter(|kinds| !kinds.is_empty());
    state
        .pending()
        .filter(|u| allowed.is_none_or(|kinds| kinds.contains(&u.kind)))
        .take(limit)
        .map(|u| u.json.clone())
        .collect()
}

/// An empty `url` removes the webhook, like Telegram.
pub fn set_webhook(state: &mut State, params: &Params) -> ApiResult {
    let url = params.string("url").unwrap_or_default();
    let secret = params.string("secret_token").filter(|s| !s.is_empty());
    if let Some(secret) = &secret {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if secret.len() > 256 || !secret.chars().all(allowed) {
            return Err(ApiError::bad_request("secret token contains unallowed characters"));
        }
    }
    let http = url.starts_with("http://") || url.starts_with("https://");
    if !url.is_empty() && !http {
        return Err(ApiError::bad_request("bad webhook: An HTTPS URL must be provided for webhook"));
    }
    if let Some(Value::Array(kinds)) = params.json("allowed_updates") {
        state.allowed_updates = Some(kinds.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
    }
    if params.flag("drop_pending_updates") {
        drop_pending(state);
    }
    state.webhook = (!url.is_empty()).then_some(Webhook { url, secret });
    Ok(json!(true))
}

pub fn delete_webhook(state: &mut State, params: &Params) -> ApiResult {
    if params.flag("drop_pending_updates") {
        drop_pending(state);
    }
    state.webhook = None;
    Ok(json!(true))
}

fn drop_pending(state: &mut State) {
    let pending: Vec<i64> = state.pending().map(|u| u.id).collect();
    state.settled.extend(pending);
}

pub fn get_webhook_info(state: &State) -> ApiResult {
    let url = state.webhook.as_ref().map(|w| w.url.clone()).unwrap_or_default();
    let mut info = json!({
        "url": url,
        "has_custom_certificate": false,
        "pending_update_count": state.pending().count(),
    });
    if state.webhook.is_some() {
        info["max_connections"] = json!(40);
    }
    if let Some(kinds) = &state.allowed_updates {
        info["allowed_updates"] = json!(kinds);
    }
    Ok(info)
}
