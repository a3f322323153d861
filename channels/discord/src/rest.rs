//! Discord's HTTP API (v10): one request per call, with Discord's answers sorted
//! into what the gateway can act on. Rate limits are reported, never waited out
//! here: the outbox (or the caller's own backoff) decides when to try again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_channel_core::ChannelError;

/// A request that gets no answer in this long failed (transiently).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed request, as Discord explained it.
#[derive(Debug, Clone, PartialEq)]
pub enum RestError {
    /// 429: wait this long. `global` when the limit is on the whole bot.
    RateLimited { retry_after: Duration, global: bool },
    /// Network trouble or a 5xx.
    Transient(String),
    /// Any other refusal: Discord's JSON error `code` (0 when absent) and message.
    Refused { status: u16, code: u64, message: String },
}

/// Discord's JSON error codes the adapter acts on.
pub mod code {
    /// The message does not exist (deleted, or never was).
    pub const UNKNOWN_MESSAGE: u64 = 10008;
    /// The interaction was already answered, or its token expired.
    pub const UNKNOWN_INTERACTION: u64 = 10062;
    /// An interaction's webhook that does not exist (any more).
    pub const UNKNOWN_WEBHOOK: u64 = 10015;
    /// An interaction's token past its 15 minutes.
    pub const INVALID_WEBHOOK_TOKEN: u64 = 50027;
}

impl RestError {
    /// Whether Discord says the thing acted on is gone (a deleted message, an
    /// expired interaction).
    pub fn is_gone(&self) -> bool {
        matches!(self, RestError::Refused { status: 404, .. })
            || matches!(
                self,
                RestError::Refused {
                    code: code::UNKNOWN_MESSAGE
                        | code::UNKNOWN_INTERACTION
                        | code::UNKNOWN_WEBHOOK
                        | code::INVALID_WEBHOOK_TOKEN,
                    ..
                }
            )
    }

    /// As the gateway reads failures. `what` names the call ("send a message").
    pub fn into_channel(self, what: &str) -> ChannelError {
        match self {
            RestError::RateLimited { retry_after, .. } => ChannelError::RateLimited(retry_after),
            RestError::Transient(why) => ChannelError::Transient(format!("discord: {what}: {why}")),
            // The bot's own token (an interaction's expired one carries a code).
            RestError::Refused { status: 401, code: 0, .. } => {
                ChannelError::Rejected("discord: the bot token was rejected (401 Unauthorized)".into())
            }
            RestError::Refused { status, code, message } => {
                ChannelError::Rejected(format!("discord: {what}: {status} {message} (code {code})"))
            }
        }
    }
}

/// The bot's HTTP client. Cheap to clone; clones share the global rate limit.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    /// After a global 429, no request is made before this instant: each is
    /// answered as rate limited for the time that is left.
    global_wait: Arc<Mutex<Option<Instant>>>,
    /// `{api_url}/api/v10`.
    base: String,
    /// `Bot <token>`.
    authorization: String,
}

impl Rest {
    /// A client for `api_url` (`https://discord.com`, or a fake's address).
    pub fn new(api_url: &str, token: &str) -> Result<Rest, ChannelError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("DiscordBot (https://github.com/switchboard, ", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| ChannelError::Rejected(format!("discord: cannot build an HTTP client: {e}")))?;
        Ok(Rest {
            http,
            global_wait: Arc::default(),
            base: format!("{}/api/v10", api_url.trim_end_matches('/')),
            authorization: format!("Bot {token}"),
        })
    }

    /// GET `path` (below `/api/v10`).
    pub async fn get(&self, path: &str) -> Result<Value, RestError> {
        self.call(Method::GET, path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// POST with no body (typing).
    pub async fn post_empty(&self, path: &str) -> Result<Value, RestError> {
        self.call(Method::POST, path, None).await
    }

    /// PATCH `path` with `body`.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// PUT `body` to `path`.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Value, RestError> {
        self.call(Method::DELETE, path, None).await
    }

    /// One request. Interaction webhooks (`/webhooks/...` and
    /// `/interactions/...`) are authorised by the token in their path alone.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, RestError> {
        // Interaction endpoints are authorised by their token alone and are not
        // under the bot's global limit.
        let by_token = path.starts_with("/webhooks/") || path.starts_with("/interactions/");
        if let (Some(left), false) = (self.global_wait_left(), by_token) {
            return Err(RestError::RateLimited { retry_after: left, global: true });
        }
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !by_token {
            request = request.header("Authorization", &self.authorization);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        // Errors lose their URL: an interaction's token is part of it.
        let response = request.send().await.map_err(|e| RestError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        let retry_header = header_secs(&response, "retry-after");
        let global_header = response.headers().get("x-ratelimit-global").is_some();
        let text = response.text().await.map_err(|e| RestError::Transient(e.without_url().to_string()))?;
        let json: Value =
            if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(json);
        }
        let error = error_of(status, &json, retry_header, global_header);
        if let (RestError::RateLimited { retry_after, global: true }, false) = (&error, by_token) {
            tracing::warn!(?retry_after, "discord: the bot is rate limited globally; every request waits");
            *self.global_wait.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + *retry_after);
        }
        Err(error)
    }

    /// What is left of a global rate limit, if one holds.
    fn global_wait_left(&self) -> Option<Duration> {
        let until = (*self.global_wait.lock().unwrap_or_else(PoisonError::into_inner))?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

fn header_secs(response: &reqwest::Response, name: &str) -> Option<f64> {
    response.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Sorts a non-2xx answer. A 429's wait comes from the body's `retry_after`
/// (seconds, fractional), else the `Retry-After` header, else one second.
fn error_of(status: StatusCode, json: &Value, retry_header: Option<f64>, global_header: bool) -> RestError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = json["retry_after"].as_f64().or(retry_header).unwrap_or(1.0).clamp(0.0, 3600.0);
        let global = json["global"].as_bool().unwrap_or(false) || global_header;
        return RestError::RateLimited { retry_after: Duration::from_secs_f64(secs), global };
    }
    if status.is_server_error() {
        return RestError::Transient(format!("{} from Discord", status.as_u16()));
    }
    let message = json["message"].as_str().unwrap_or("refused").chars().take(200).collect();
    RestError::Refused { status: status.as_u16(), code: json["code"].as_u64().unwrap_or(0), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_429_waits_what_the_body_says_then_the_header() {
        let body = json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false});
        assert_eq!(
            error_of(StatusCode::TOO_MANY_REQUESTS, &body, Some(3.0), false),
            RestError::RateLimited { retry_after: Duration::from_millis(250), global: false }
        );
        assert_eq!(
            error_of(StatusCode::TOO_MANY_REQUESTS, &Value::Null, Some(2.0), true),
            RestError::RateLimited { retry_after: Duration::from_secs(2), global: true }
        );
    }

    #[test]
    fn refusals_keep_discords_code_and_server_errors_are_transient() {
        let e = error_of(StatusCode::NOT_FOUND, &json!({"message": "Unknown Message", "code": 10008}), None, false);
        assert!(e.is_gone());
        assert!(matches!(e.into_channel("edit"), ChannelError::Rejected(m) if m.contains("Unknown Message")));
        let expired = json!({"message": "Invalid Webhook Token", "code": 50027});
        let e = error_of(StatusCode::UNAUTHORIZED, &expired, None, false);
        assert!(e.is_gone(), "an expired interaction is gone");
        assert!(matches!(e.into_channel("answer"), ChannelError::Rejected(m) if !m.contains("bot token")));
        let e = error_of(StatusCode::UNAUTHORIZED, &json!({"message": "401: Unauthorized", "code": 0}), None, false);
        assert!(matches!(e.into_channel("send"), ChannelError::Rejected(m) if m.contains("bot token was rejected")));
        let e = error_of(StatusCode::BAD_GATEWAY, &Value::Null, None, false);
        assert!(matches!(e.into_channel("send"), ChannelError::Transient(_)));
    }
}
