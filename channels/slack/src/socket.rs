//! Socket Mode: `apps.connections.open`, then a WebSocket whose envelopes are
//! handed to the receiver in order per Slack channel and side by side across
//! channels (at most [`IN_FLIGHT`] at once), each acknowledged only after the
//! receiver says its event is journaled. A `disconnect` envelope or a
//! dropped socket means a new connection (Slack redelivers what was not
//! acknowledged); a socket that stays silent is replaced; failures back off up
//! to a minute, never spinning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::api::Api;
use crate::receive::Receiver;
use crate::wire::Envelope;
use switchboard_channel_core::health::{HealthCell, State};
use switchboard_channel_core::ordered::Ordered;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The client pings this often; Slack pings too.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Nothing at all received for this long: the socket is dead.
pub(crate) const SILENT_FOR: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Envelopes being handed over at once (eight times as many may wait for an
/// earlier one of their channel); the socket is read further while there is room.
pub(crate) const IN_FLIGHT: usize = 64;
/// How long a connection that ends on purpose waits to acknowledge what is
/// still being journaled.
const DRAIN: Duration = Duration::from_secs(2);

enum Ended {
    Stop,
    Fatal(String),
    /// Reconnect; `now` skips the backoff (Slack asked for a new connection).
    Retry {
        why: String,
        now: bool,
    },
}

/// The loop's parts.
pub struct SocketLoop {
    /// Authenticated with the app-level token.
    pub app_api: Api,
    pub receiver: Arc<Receiver>,
    pub health: HealthCell,
    pub stop: watch::Receiver<bool>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl SocketLoop {
    /// Connects and reconnects until stopped or refused for good.
    pub async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        // One line of hand-overs for every connection: a chat's envelopes stay
        // in order across a reconnect, and the bound is the process's.
        let mut handing = Ordered::new(IN_FLIGHT);
        loop {
            if *self.stop.borrow() {
                return;
            }
            let mut established = false;
            let ended = match self.app_api.call("apps.connections.open", &json!({})).await {
                Ok(answer) => match answer["url"].as_str() {
                    Some(url) => self.connection(url, &mut established, &mut handing).await,
                    None => Ended::Retry { why: "apps.connections.open gave no URL".into(), now: false },
                },
                Err(e) if e.is_auth() => Ended::Fatal("the app-level token was refused".into()),
                Err(e) => Ended::Retry { why: format!("apps.connections.open: {e:?}"), now: false },
            };
            match ended {
                Ended::Stop => return,
                Ended::Fatal(why) => {
                    tracing::error!(reason = %why, "slack: socket mode refused; not reconnecting");
                    self.health.set(State::Failed(why));
                    return;
                }
                Ended::Retry { why, now } => {
                    if established {
                        backoff = FIRST_BACKOFF;
                    }
                    self.health.set(State::Reconnecting(why.clone()));
                    if now {
                        tracing::info!(reason = %why, "slack: opening a new socket mode connection");
                        continue;
                    }
                    tracing::warn!(reason = %why, retry_in = ?backoff, "slack: socket mode connection lost");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.changed() => return,
                    }
                }
            }
        }
    }

    async fn connection(&mut self, url: &str, established: &mut bool, handing: &mut Ordered) -> Ended {
        self.health.set(State::Connecting);
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return Ended::Retry { why: format!("cannot connect: {e}"), now: false },
            Err(_) => return Ended::Retry { why: "cannot connect: timed out".into(), now: false },
        };
        let ended = self.read(&mut ws, established, handing).await;
        let _ = ws.close(None).await;
        ended
    }

    async fn read(&mut self, ws: &mut Socket, established: &mut bool, handing: &mut Ordered) -> Ended {
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut last_heard = Instant::now();
        // Hand-overs run on tasks of their own and send back, to this
        // connection, what may be acknowledged.
        let (journaled, mut to_ack) = mpsc::unbounded_channel::<String>();
        let ended = loop {
            tokio::select! {
                _ = self.stop.changed() => break Ended::Stop,
                Some(id) = to_ack.recv() => {
                    if let Err(e) = ws.send(acknowledgement(&id)).await {
                        return Ended::Retry { why: format!("cannot acknowledge: {e}"), now: false };
                    }
                }
                // Every place taken: the socket is not read until one is free
                // (a hand-over that ends without an acknowledgement frees one
                // too). Frames were not listened for meanwhile: no silence.
                _ = handing.room(), if !handing.has_room() => last_heard = Instant::now(),
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENT_FOR {
                        return Ended::Retry { why: "nothing received for 30 s".into(), now: false };
                    }
                    if let Err(e) = ws.send(WsMessage::Ping(Vec::new().into())).await {
                        return Ended::Retry { why: format!("cannot ping: {e}"), now: false };
                    }
                }
                frame = ws.next(), if handing.has_room() => {
                    let text = match frame {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(_))) | None => return Ended::Retry { why: "the socket was closed".into(), now: false },
                        Some(Ok(_)) => {
                            // A pong answers our ping: the socket still carries frames.
                            last_heard = Instant::now();
                            self.health.touch();
                            continue;
                        }
                        Some(Err(e)) => return Ended::Retry { why: format!("connection error: {e}"), now: false },
                    };
                    last_heard = Instant::now();
                    self.health.touch();
                    let envelope: Envelope = match serde_json::from_str(text.as_str()) {
                        Ok(envelope) => envelope,
                        Err(e) => {
                            tracing::warn!(error = %e, "slack: an unreadable socket mode frame was skipped");
                            continue;
                        }
                    };
                    let kind = envelope.kind.clone();
                    match kind.as_str() {
                        "hello" => {
                            *established = true;
                            self.health.set(State::Connected);
                            tracing::info!("slack: socket mode connected");
                        }
                        "disconnect" => {
                            break match envelope.reason.as_deref() {
                                Some("link_disabled") => Ended::Fatal("Socket Mode is turned off for this app".into()),
                                reason => Ended::Retry { why: format!("Slack asked to reconnect ({})", reason.unwrap_or("no reason")), now: true },
                            };
                        }
                        _ => {
                            let Some(id) = envelope.envelope_id.clone() else { continue };
                            if envelope.retry_attempt > 0 {
                                tracing::debug!(attempt = envelope.retry_attempt, "slack: a redelivered envelope");
                            }
                            // Unacknowledged (not journaled): Slack delivers it again.
                            let (receiver, journaled) = (self.receiver.clone(), journaled.clone());
                            handing.spawn(order_key(&envelope), async move {
                                if receiver.envelope(&envelope).await {
                                    let _ = journaled.send(id);
                                }
                            }).await;
                        }
                    }
                }
            }
        };
        // Ended on purpose (Slack asked for a new connection, or the daemon
        // stops), the socket still carries acknowledgements: those of the
        // hand-overs under way go out, for a moment. A slash command or a press
        // is never delivered again, so its person would see an error for a
        // command that runs.
        drop(journaled);
        let deadline = tokio::time::sleep(DRAIN);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                id = to_ack.recv() => {
                    // None: every hand-over of this connection has ended.
                    let Some(id) = id else { break };
                    if ws.send(acknowledgement(&id)).await.is_err() {
                        break;
                    }
                }
                _ = &mut deadline => break,
            }
        }
        ended
    }
}

/// The frame that acknowledges envelope `id`.
fn acknowledgement(id: &str) -> WsMessage {
    WsMessage::text(json!({"envelope_id": id}).to_string())
}

/// What an envelope's hand-over keeps its order with: its Slack channel (a DM, a
/// channel and its threads), where the payload names one; otherwise the
/// envelopes that name none, among themselves.
fn order_key(envelope: &Envelope) -> String {
    let p = &envelope.payload;
    let named = [
        &p["event"]["channel"],
        &p["event"]["assistant_thread"]["channel_id"],
        &p["event"]["item"]["channel"],
        &p["channel"]["id"],
        &p["container"]["channel_id"],
        &p["channel_id"],
    ];
    named.into_iter().find_map(|v| v.as_str()).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, payload: serde_json::Value) -> Envelope {
        serde_json::from_value(json!({"type": kind, "envelope_id": "e1", "payload": payload})).unwrap()
    }

    #[test]
    fn each_kind_of_envelope_keeps_order_with_its_channel() {
        let message = envelope("events_api", json!({"event": {"type": "message", "channel": "D0001"}}));
        let pane = envelope(
            "events_api",
            json!({"event": {"type": "assistant_thread_started", "assistant_thread": {"channel_id": "D0002"}}}),
        );
        let press = envelope("interactive", json!({"channel": {"id": "C0003"}, "container": {"channel_id": "C0003"}}));
        let slash = envelope("slash_commands", json!({"channel_id": "C0004", "command": "/switchboard"}));
        let other = envelope("events_api", json!({"event": {"type": "app_home_opened"}}));
        let keys: Vec<String> = [message, pane, press, slash, other].iter().map(order_key).collect();
        assert_eq!(keys, ["D0001", "D0002", "C0003", "C0004", ""]);
    }
}
