//! The webhook listener: checks Telegram's secret header, delivers the update, and
//! answers 200 only once the sink journaled it (otherwise 500, so Telegram retries).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use switchboard_channel_core::ChannelError;
use teloxide::types::Update;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::polling::stopped;
use crate::receive::Receiver;
use crate::status::{Health, HealthCell};

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub(crate) struct Hook {
    pub receiver: Arc<Receiver>,
    pub secret: String,
    pub path: String,
}

pub(crate) async fn bind(listen: SocketAddr) -> Result<TcpListener, ChannelError> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| ChannelError::Rejected(format!("telegram: cannot listen for the webhook on {listen}: {e}")))
}

/// Serves until `stop` turns true; a listener that ends before is said in `health`.
pub(crate) fn serve(
    listener: TcpListener,
    hook: Hook,
    mut stop: watch::Receiver<bool>,
    health: HealthCell,
) -> JoinHandle<()> {
    let app = Router::new().fallback(handle).with_state(Arc::new(hook));
    tokio::spawn(async move {
        let shutdown = async move { stopped(&mut stop).await };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "telegram: webhook listener failed");
            // Not listening any more: not receiving either.
            health.set(Health::Retrying("the webhook listener stopped".to_owned()));
        }
        tracing::debug!("telegram: webhook listener stopped");
    })
}

async fn handle(
    State(hook): State<Arc<Hook>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if uri.path() != hook.path {
        return StatusCode::NOT_FOUND;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !same_secret(given, hook.secret.as_bytes()) {
        tracing::warn!("telegram: webhook request with a missing or wrong secret refused");
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => {
            tracing::warn!(error = %e, "telegram: webhook body is not an Update");
            return StatusCode::BAD_REQUEST;
        }
    };
    let Some(event) = hook.receiver.map(&update) else { return StatusCode::OK };
    match hook.receiver.deliver(event).await {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(update_id = update.id.0, %error, "telegram: the gateway did not take the update; Telegram will retry");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Compares without an early exit, so timing does not reveal the secret.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_must_match_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
