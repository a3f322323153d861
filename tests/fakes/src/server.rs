//! The HTTP server under every fake: bound to 127.0.0.1:0, serving an axum router,
//! stopping (and closing every open connection, hung ones included) when the last
//! handle to it is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Aborts the accept loop (and with it every connection task) on drop.
pub(crate) struct ServerTask(JoinHandle<()>);

impl ServerTask {
    /// Runs `task` (an accept loop) until the handle is dropped.
    pub(crate) fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> ServerTask {
        ServerTask(tokio::spawn(task))
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections until the task is aborted, each served by `serve` on a
/// task the loop owns (so aborting it drops them all).
pub(crate) async fn accept_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Binds 127.0.0.1:0 and serves `app` on the current tokio runtime.
pub(crate) async fn start(name: &str, app: Router) -> (SocketAddr, Arc<ServerTask>) {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|e| panic!("{name}: bind 127.0.0.1:0: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{name}: local address: {e}"));
    (addr, Arc::new(ServerTask(tokio::spawn(serve(listener, app)))))
}

/// Accept loop: aborting it drops every connection, hung requests and pending
/// long polls included.
async fn serve(listener: TcpListener, app: Router) {
    accept_each(listener, move |stream| serve_connection(stream, app.clone())).await
}

async fn serve_connection(stream: TcpStream, app: Router) {
    // Best effort: only affects latency of small chunks.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    // An error here means the client went away mid-request; nothing to report.
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}
