//! Hearing other replicas' announcements: one connection that LISTENs on the
//! channel [`CHANNEL`] and counts each notification it hears. A dropped
//! connection is made again (every second until it is), and each new one counts
//! once too, since notifications sent meanwhile were missed.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// The notification channel replicas announce work on.
pub(super) const CHANNEL: &str = "switchboard_work";

/// How long to wait before connecting again.
const RETRY: Duration = Duration::from_secs(1);

/// Listens until the store (its runtime) goes away.
pub(super) async fn run(config: tokio_postgres::Config, heard: watch::Sender<u64>) {
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let (tell, mut told) = tokio::sync::mpsc::unbounded_channel();
            let messages = tokio::spawn(async move {
                let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, AsyncMessage::Notification(_)) && tell.send(()).is_err() {
                        return;
                    }
                }
            });
            if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                heard.send_modify(|n| *n += 1);
                while told.recv().await.is_some() {
                    heard.send_modify(|n| *n += 1);
                }
                tracing::warn!("the connection listening for other replicas closed; connecting again");
            }
            messages.abort();
        }
        if heard.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}
