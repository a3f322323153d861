//! `switchboard serve`: the daemon. Starts every configured channel behind the
//! gateway and runs until Ctrl-C or SIGTERM.

use switchboard::channels::REGISTERED;
use switchboard::daemon::{Daemon, Parts};

use super::app::App;

pub async fn run(app: App) -> anyhow::Result<i32> {
    // Nothing but root may read this process's memory or environment through /proc.
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let sandbox = app.backend.sandbox();
    match sandbox.unconfined() {
        Some(_) => tracing::warn!("{}", sandbox.describe()),
        None => tracing::info!("{}", sandbox.describe()),
    }
    eprintln!("{}", sandbox.describe());
    let parts = Parts { settings: app.settings, store: app.store, backend: app.backend, expired: app.expired };
    let daemon = Daemon::start(parts, REGISTERED).await?;
    let statuses: Vec<String> =
        daemon.statuses().into_iter().map(|(name, status)| format!("{name} ({status})")).collect();
    tracing::info!(channels = %statuses.join(", "), "serving");
    eprintln!("switchboard is serving on {}. Ctrl-C stops it.", statuses.join(", "));
    shutdown_signal().await;
    eprintln!("stopping…");
    daemon.stop().await;
    Ok(0)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
