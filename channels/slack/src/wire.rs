//! The parts of Slack's JSON the adapter reads: Socket Mode envelopes, event
//! callbacks and their events, interactive payloads and slash commands.
//! Unknown fields are ignored; missing optional ones default.

use serde::Deserialize;
use serde_json::Value;

/// A Socket Mode frame: `hello`, `disconnect`, or an envelope to acknowledge.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub envelope_id: Option<String>,
    #[serde(default)]
    pub payload: Value,
    /// More than 0: a redelivery of an envelope not acknowledged in time.
    #[serde(default)]
    pub retry_attempt: u64,
    /// `disconnect`: `warning`, `refresh_requested`, `link_disabled`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// An Events API delivery (`event_callback`, or `url_verification` over HTTP).
#[derive(Debug, Deserialize)]
pub struct EventCallback {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub event: Value,
    #[serde(default)]
    pub challenge: Option<String>,
}

/// A `message` or `app_mention` event.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageEvent {
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub channel: String,
    /// `im`, `channel`, `group`, `mpim` (message events only).
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub bot_id: Option<String>,
    #[serde(default)]
    pub text: String,
    pub ts: String,
    #[serde(default)]
    pub thread_ts: Option<String>,
}

/// `assistant_thread_started`.
#[derive(Debug, Clone, Deserialize)]
pub struct AssistantThreadStarted {
    pub assistant_thread: AssistantThread,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssistantThread {
    pub channel_id: String,
    pub thread_ts: String,
}

/// An id-bearing object (`{"id": …}`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Ref {
    #[serde(default)]
    pub id: String,
}

/// The message a button sat on.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ActionMessage {
    #[serde(default)]
    pub ts: String,
    #[serde(default)]
    pub thread_ts: Option<String>,
}

/// One pressed button.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub action_id: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub action_ts: Option<String>,
}

/// An interactive payload (`block_actions`).
#[derive(Debug, Clone, Deserialize)]
pub struct Interactive {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub user: Ref,
    #[serde(default)]
    pub channel: Option<Ref>,
    #[serde(default)]
    pub message: Option<ActionMessage>,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub response_url: Option<String>,
    #[serde(default)]
    pub trigger_id: Option<String>,
}

/// A slash command's payload.
#[derive(Debug, Clone, Deserialize)]
pub struct SlashCommand {
    #[serde(default)]
    pub text: String,
    pub user_id: String,
    pub channel_id: String,
    #[serde(default)]
    pub response_url: String,
    #[serde(default)]
    pub trigger_id: String,
}

/// `auth.test`: who the bot is.
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    pub user_id: String,
    #[serde(default)]
    pub team_id: Option<String>,
}

/// The direct-message channels' ids start with `D`.
pub fn is_direct(channel: &str) -> bool {
    channel.starts_with('D')
}
