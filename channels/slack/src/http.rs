//! HTTP mode: one endpoint for the Events API, interactivity and the slash
//! command. Every request's `X-Slack-Signature` is checked against the signing
//! secret, with a timestamp within five minutes (an old request replayed is
//! refused); the `url_verification` challenge is answered; everything else is
//! journaled, then answered 200 (a 500 makes Slack try again later).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use switchboard_channel_core::ChannelError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::receive::Receiver;
use crate::wire::{EventCallback, Interactive, SlashCommand};
use switchboard_channel_core::HealthCell;

/// Slack's signature of a request: `v0=` and the hex HMAC-SHA256 of
/// `v0:{timestamp}:{body}` under the signing secret.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// A request signed longer ago than this is refused (a replay).
const MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Slack's bodies are small; anything larger is not Slack's.
const MAX_BODY: usize = 1024 * 1024;

/// What the endpoint needs.
#[derive(Clone)]
pub struct Endpoint {
    pub receiver: Arc<Receiver>,
    pub signing_secret: String,
    pub health: HealthCell,
}

/// Binds the listening address (before anything is announced).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ChannelError> {
    TcpListener::bind(addr).await.map_err(|e| ChannelError::Rejected(format!("slack: cannot listen on {addr}: {e}")))
}

/// Serves until `stop` is set.
pub fn serve(listener: TcpListener, endpoint: Endpoint, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let health = endpoint.health.clone();
    let app = Router::new().fallback(handle).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)).with_state(endpoint);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "slack: the HTTP endpoint failed");
            // Not listening any more: not receiving either.
            health.set(switchboard_channel_core::health::State::Failed("the HTTP endpoint stopped".into()));
        }
    })
}

async fn handle(State(endpoint): State<Endpoint>, headers: HeaderMap, body: Bytes) -> Response {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if let Err(why) = verify(&endpoint.signing_secret, &headers, &body, now) {
        // Debug only: anyone who can reach the port could fill the log.
        tracing::debug!(reason = why, "slack: a request with a bad signature was refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    endpoint.health.touch();
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let handled = if form {
        let fields: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        if let Some(payload) = fields.get("payload") {
            match serde_json::from_str::<Interactive>(payload) {
                Ok(interactive) => endpoint.receiver.interactive(&interactive).await,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            }
        } else {
            let value: Value =
                fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>().into();
            match serde_json::from_value::<SlashCommand>(value) {
                Ok(command) => endpoint.receiver.slash(&command).await,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            }
        }
    } else {
        let Ok(callback) = serde_json::from_slice::<EventCallback>(&body) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if callback.kind == "url_verification" {
            return axum::Json(json!({"challenge": callback.challenge})).into_response();
        }
        // A redelivery (X-Slack-Retry-Num) carries the same event: the journal knows it.
        endpoint.receiver.event(&callback).await
    };
    if handled {
        StatusCode::OK.into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// Checks a request's signature and age. The reason is safe to log.
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header(TIMESTAMP_HEADER).ok_or("no timestamp")?;
    let at: u64 = timestamp.parse().map_err(|_| "an unreadable timestamp")?;
    if now.abs_diff(at) > MAX_AGE.as_secs() {
        return Err("signed too long ago (or in the future)");
    }
    let signature = header(SIGNATURE_HEADER).and_then(|s| s.strip_prefix("v0=")).ok_or("no signature")?;
    let expected = decode_hex(signature).ok_or("an unreadable signature")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    ring::hmac::verify(&key, &message, &expected).map_err(|_| "the signature does not match")
}

/// What Slack would send for `body` at `timestamp`.
#[cfg(test)]
fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &message);
    format!("v0={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(signature: &str, timestamp: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        h
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // From Slack's "Verifying requests" documentation.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, 1531420618, body), signature);
        assert_eq!(verify(secret, &headers(signature, 1531420618), body, 1531420618 + 10), Ok(()));
    }

    #[test]
    fn forged_stale_and_tampered_requests_are_refused() {
        let secret = "a-signing-secret-of-the-app";
        let body = b"{\"type\":\"event_callback\"}";
        let good = sign(secret, 1_000_000, body);
        assert_eq!(verify(secret, &headers(&good, 1_000_000), body, 1_000_000), Ok(()));
        assert!(verify(secret, &headers(&good, 1_000_000), body, 1_000_000 + 301).is_err(), "a replay");
        assert!(verify(secret, &headers(&good, 1_000_000), b"{\"type\":\"other\"}", 1_000_000).is_err(), "tampered");
        assert!(verify("another-secret", &headers(&good, 1_000_000), body, 1_000_000).is_err(), "forged");
        assert!(verify(secret, &HeaderMap::new(), body, 1_000_000).is_err());
    }
}
