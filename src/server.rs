//! The operator's HTTP endpoints, on `[server] listen` when it is set:
//! `/healthz` (liveness: the runtime answers; never a dependency), `/readyz`
//! (readiness: the store answers and every channel receives) and `/metrics`
//! (OpenMetrics text, content-free).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;

use crate::gateway::Gateway;
use crate::metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The listener, served until dropped or stopped.
pub struct Server {
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and serves the endpoints for `gateway`.
    pub async fn start(listen: SocketAddr, gateway: Arc<Gateway>) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} ([server] listen)"))?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(gateway);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the operator endpoints stopped");
            }
        });
        tracing::info!(%address, "operator endpoints: /healthz /readyz /metrics");
        Ok(Server { task })
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Alive: this handler ran. Nothing else is checked, so a dependency's outage
/// never gets the process restarted in a loop.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let readiness = gateway.readiness().await;
    let status = if readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = readiness.lines().join("\n");
    body.push('\n');
    (status, body).into_response()
}

async fn metrics_text(State(gateway): State<Arc<Gateway>>) -> Response {
    let snapshot = gateway.snapshot().await;
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics::encode(&snapshot)).into_response()
}
