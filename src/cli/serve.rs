//! `switchboard serve`: the daemon. Starts every configured channel behind the
//! gateway and runs until Ctrl-C or SIGTERM.

use std::sync::Arc;

use switchboard::control;
use switchboard::gateway::{Gateway, Operator, COMMANDS};
use switchboard_channel_telegram::{Mode, TelegramChannel, TelegramConfig};

use super::app::App;

pub async fn run(app: &App) -> anyhow::Result<i32> {
    let t = &app.settings.telegram;
    let Some(token) = t.token.clone() else {
        anyhow::bail!("no channel is configured: set SWITCHBOARD_TELEGRAM__TOKEN to a bot token from @BotFather");
    };
    let config = TelegramConfig {
        token,
        api_url: t.api_url.clone(),
        mode: if t.webhook { Mode::Webhook } else { Mode::Polling },
        webhook_url: t.webhook.then(|| t.webhook_url.clone()),
        webhook_listen: t.webhook_listen.parse().ok().filter(|_| t.webhook),
        webhook_secret: t.webhook_secret.clone(),
        poll_timeout_secs: 10,
        commands: COMMANDS.iter().map(|(c, d)| (c.to_string(), d.to_string())).collect(),
    };
    let telegram = Arc::new(TelegramChannel::new(config)?);
    let gateway = Gateway::new(app.backend.clone(), app.store.clone(), &app.settings);
    gateway.start(telegram.clone()).await?;
    // The operator's commands reach the running daemon through this socket.
    let operator = Arc::new(Operator { gateway: gateway.clone() });
    let control = control::serve(&app.settings.data_dir, operator)?;
    let name = telegram.bot_username().map(|u| format!(" as @{u}")).unwrap_or_default();
    tracing::info!("serving on Telegram{name}");
    eprintln!("switchboard is serving on Telegram{name}. Ctrl-C stops it.");
    shutdown_signal().await;
    eprintln!("stopping…");
    control.abort();
    let _ = std::fs::remove_file(control::socket_path(&app.settings.data_dir));
    gateway.stop().await;
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
