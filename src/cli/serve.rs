//! `switchboard serve`: the daemon. Starts every configured channel behind the
//! gateway and runs until Ctrl-C or SIGTERM, telling systemd how it goes.

use std::sync::Arc;

use switchboard::channels::REGISTERED;
use switchboard::config::LogFormat;
use switchboard::daemon::{Daemon, Parts};
use switchboard::notify::Notifier;

use super::app::App;

pub async fn run(app: App) -> anyhow::Result<i32> {
    // Nothing but root may read this process's memory or environment through /proc.
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // A JSON log is one object a line: the human lines are left out of it.
    let human = app.settings.log.format == LogFormat::Text;
    let say = |line: &str| {
        if human {
            eprintln!("{line}");
        }
    };
    let sandbox = app.backend.sandbox();
    match sandbox.unconfined() {
        Some(_) => tracing::warn!("{}", sandbox.describe()),
        None => tracing::info!("{}", sandbox.describe()),
    }
    say(&sandbox.describe());
    let store = app.store.clone();
    let parts = Parts { settings: app.settings, store: app.store, backend: app.backend, expired: app.expired };
    let daemon = Arc::new(Daemon::start(parts, REGISTERED).await?);
    let statuses: Vec<String> =
        daemon.statuses().into_iter().map(|(name, status)| format!("{name} ({status})")).collect();
    tracing::info!(channels = %statuses.join(", "), "serving");
    say(&format!("switchboard is serving on {}. Ctrl-C stops it.", statuses.join(", ")));
    let notifier = Arc::new(Notifier::from_env());
    notifier.ready();
    let watchdog =
        notifier.watchdog_every().map(|every| tokio::spawn(watchdog(daemon.clone(), notifier.clone(), every)));
    // A store that refuses every write leaves the daemon deaf (no event can be
    // journaled): it ends, so that its supervisor starts it again.
    let broken = tokio::select! {
        _ = shutdown_signal() => None,
        why = switchboard::store::broken(&store, BROKEN_CHECK) => Some(why),
    };
    if let Some(why) = &broken {
        tracing::error!(error = %why, "the store refuses every write; stopping so that a restart reopens it");
        say(&format!("switchboard is stopping: the store refuses every write ({why}); start it again to recover."));
    }
    notifier.stopping();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    say("stopping…");
    daemon.stop().await;
    // The next process (a restart, another replica) may take the store at once.
    if let Err(e) = switchboard::store::blocking(&store, |s| s.close()).await {
        tracing::warn!(error = %e, "cannot let go of the store cleanly");
    }
    // A failure: systemd's `Restart=on-failure` and container restart policies
    // start it again.
    Ok(if broken.is_some() { super::EXIT_FAILURE } else { 0 })
}

/// How often `serve` asks whether the store still writes.
const BROKEN_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Pets systemd's watchdog only while the store answers and every channel
/// receives: a deaf daemon is left to be restarted (the unit stops it with
/// SIGTERM, so what runs finishes and nothing is lost).
async fn watchdog(daemon: Arc<Daemon>, notifier: Arc<Notifier>, every: std::time::Duration) {
    // Said only on a change after the first check (channels may still be connecting).
    let mut was_ready: Option<bool> = None;
    loop {
        let readiness = daemon.readiness().await;
        let ready = readiness.ready();
        if ready {
            notifier.watchdog();
        }
        match (was_ready, ready) {
            (Some(false), true) => {
                tracing::info!("receiving again; the watchdog is kept");
                notifier.status("serving");
            }
            (Some(true), false) => {
                let why = readiness.lines().join("; ");
                tracing::warn!(checks = %why, "not making progress; systemd's watchdog is no longer kept");
                notifier.status(&format!("not making progress: {why}"));
            }
            _ => {}
        }
        was_ready = Some(ready);
        tokio::time::sleep(every).await;
    }
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
