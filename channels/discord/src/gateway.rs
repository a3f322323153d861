//! The Gateway WebSocket connection: HELLO, IDENTIFY or RESUME, heartbeats, and
//! reconnecting with a backoff that never spins. Dispatch events go, in the order
//! they arrived, to one channel that the receiver reads; nothing slow happens on
//! this loop, so heartbeats keep time whatever the receiver is doing.
//!
//! A connection is given up on (and resumed on a new one) when a heartbeat goes
//! unacknowledged or nothing arrives for two heartbeat intervals: a silent socket
//! is treated as a dead one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::rest::{Rest, RestError};
use crate::wire::{op, Frame, GatewayBot, Ready};
use switchboard_channel_core::health::{HealthCell, State};

/// Guilds (channel and thread announcements), guild messages, direct messages,
/// and message content.
pub const INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15);

/// Connecting or the first frame taking longer than this fails the attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the gateway may stay silent before HELLO says its heartbeat interval
/// (twice Discord's usual 41.25 s).
pub(crate) const DEFAULT_SILENCE: Duration = Duration::from_secs(90);
/// The first wait after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A connection that lasted this long was a good one.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One dispatch event: its name and payload.
#[derive(Debug)]
pub struct Dispatch {
    pub name: String,
    pub data: Value,
}

/// How a connection ended.
enum Ended {
    Stop,
    /// Discord refused the bot for good.
    Fatal(String),
    /// Try again (resuming when the session is still good).
    Retry(String),
}

/// A session that can be resumed.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    url: String,
    seq: Option<u64>,
}

/// The loop's settings and outputs.
pub struct GatewayLoop {
    pub rest: Rest,
    pub token: String,
    pub health: HealthCell,
    pub events: mpsc::UnboundedSender<Dispatch>,
    pub stop: watch::Receiver<bool>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl GatewayLoop {
    /// Connects and reconnects until stopped or refused for good.
    pub async fn run(mut self) {
        let mut session: Option<Session> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let mut established = false;
            let connected_at = Instant::now();
            let ended = match self.url(&session).await {
                Ok(url) => self.connection(&url, &mut session, &mut established).await,
                Err(RestError::Refused { status: 401, .. }) => Ended::Fatal("the bot token was rejected".into()),
                Err(e) => Ended::Retry(format!("cannot get the gateway address ({})", describe(&e))),
            };
            match ended {
                Ended::Stop => return,
                Ended::Fatal(why) => {
                    tracing::error!(reason = %why, "discord: the gateway refused the bot; not reconnecting");
                    self.health.set(State::Failed(why));
                    return;
                }
                Ended::Retry(why) => {
                    // Only a connection that held a while resets the backoff: a
                    // READY-then-drop loop must not identify once a second
                    // (Discord limits identifies per day).
                    if established && connected_at.elapsed() >= STABLE_AFTER {
                        backoff = FIRST_BACKOFF;
                    }
                    tracing::warn!(reason = %why, retry_in = ?backoff, "discord: gateway connection lost");
                    self.health.set(State::Reconnecting(why));
                    let wait = jittered(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Where to connect: the session's resume address, else Discord's gateway address.
    async fn url(&self, session: &Option<Session>) -> Result<String, RestError> {
        if let Some(s) = session.as_ref().filter(|s| !s.url.is_empty()) {
            return Ok(s.url.clone());
        }
        let bot: GatewayBot = serde_json::from_value(self.rest.get("/gateway/bot").await?)
            .map_err(|e| RestError::Transient(format!("unreadable gateway address: {e}")))?;
        let wait = bot.identify_wait();
        if !wait.is_zero() {
            tracing::warn!(?wait, "discord: no session starts left today; waiting for the limit to reset");
            self.health.set(State::Reconnecting("no session starts left; waiting for Discord's reset".into()));
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(bot.url)
    }

    async fn connection(&mut self, url: &str, session: &mut Option<Session>, established: &mut bool) -> Ended {
        self.health.set(State::Connecting);
        let address = format!("{}/?v=10&encoding=json", url.trim_end_matches('/'));
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(address)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => return Ended::Retry(format!("cannot connect: {e}")),
            Err(_) => return Ended::Retry("cannot connect: timed out".into()),
        };
        let interval = match tokio::time::timeout(CONNECT_TIMEOUT, hello(&mut ws)).await {
            Ok(Some(interval)) => interval,
            _ => return Ended::Retry("no HELLO from the gateway".into()),
        };
        // Heartbeats and their acknowledgements come every interval: two without a frame is deaf.
        self.health.set_within(interval * 2);
        self.health.touch();
        let greeting = match session {
            Some(s) => json!({"op": op::RESUME, "d": {"token": self.token, "session_id": s.id, "seq": s.seq}}),
            None => json!({"op": op::IDENTIFY, "d": {
                "token": self.token,
                "intents": INTENTS,
                "properties": {"os": std::env::consts::OS, "browser": "switchboard", "device": "switchboard"},
            }}),
        };
        if let Err(e) = ws.send(WsMessage::text(greeting.to_string())).await {
            return Ended::Retry(format!("cannot identify: {e}"));
        }
        let ended = self.read(&mut ws, interval, session, established).await;
        // A close frame with 1000 would end the session; a stop or a retry keeps it resumable.
        let _ = ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Library(4000),
                reason: "reconnecting".into(),
            }))
            .await;
        ended
    }

    async fn read(
        &mut self,
        ws: &mut Socket,
        interval: Duration,
        session: &mut Option<Session>,
        established: &mut bool,
    ) -> Ended {
        let mut seq = session.as_ref().and_then(|s| s.seq);
        // The first heartbeat comes at a random point of the first interval.
        let mut next_beat = tokio::time::Instant::now() + interval.mul_f64(fraction());
        let mut acked = true;
        let mut last_heard = Instant::now();
        loop {
            let silent_for = interval * 2;
            tokio::select! {
                _ = self.stop.changed() => return Ended::Stop,
                _ = tokio::time::sleep_until(next_beat) => {
                    if !acked {
                        return Ended::Retry("a heartbeat was not acknowledged".into());
                    }
                    if last_heard.elapsed() > silent_for {
                        return Ended::Retry("nothing received for two heartbeat intervals".into());
                    }
                    if let Err(e) = ws.send(WsMessage::text(json!({"op": op::HEARTBEAT, "d": seq}).to_string())).await {
                        return Ended::Retry(format!("cannot send a heartbeat: {e}"));
                    }
                    acked = false;
                    next_beat = tokio::time::Instant::now() + interval;
                }
                received = ws.next() => {
                    let text = match received {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(frame))) => return closed(frame.map(|f| u16::from(f.code)), session),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Ended::Retry(format!("connection error: {e}")),
                        None => return Ended::Retry("the gateway closed the connection".into()),
                    };
                    last_heard = Instant::now();
                    self.health.touch();
                    let frame: Frame = match serde_json::from_str(text.as_str()) {
                        Ok(frame) => frame,
                        Err(e) => {
                            tracing::warn!(error = %e, "discord: an unreadable gateway frame was skipped");
                            continue;
                        }
                    };
                    if frame.s.is_some() {
                        seq = frame.s;
                        if let Some(s) = session.as_mut() {
                            s.seq = seq;
                        }
                    }
                    match frame.op {
                        op::DISPATCH => {
                            let name = frame.t.unwrap_or_default();
                            match name.as_str() {
                                "READY" => match serde_json::from_value::<Ready>(frame.d.clone()) {
                                    Ok(ready) => {
                                        let url = ready.resume_gateway_url.clone().unwrap_or_default();
                                        *session = Some(Session { id: ready.session_id, url, seq });
                                        *established = true;
                                        self.health.set(State::Connected);
                                        tracing::info!("discord: gateway ready");
                                    }
                                    Err(e) => return Ended::Retry(format!("unreadable READY: {e}")),
                                },
                                "RESUMED" => {
                                    *established = true;
                                    self.health.set(State::Connected);
                                    tracing::info!("discord: gateway session resumed");
                                }
                                _ => {}
                            }
                            if self.events.send(Dispatch { name, data: frame.d }).is_err() {
                                return Ended::Stop;
                            }
                        }
                        op::HEARTBEAT => {
                            if let Err(e) = ws.send(WsMessage::text(json!({"op": op::HEARTBEAT, "d": seq}).to_string())).await {
                                return Ended::Retry(format!("cannot send a heartbeat: {e}"));
                            }
                        }
                        op::HEARTBEAT_ACK => acked = true,
                        op::RECONNECT => return Ended::Retry("Discord asked to reconnect".into()),
                        op::INVALID_SESSION => {
                            if frame.d.as_bool() != Some(true) {
                                *session = None;
                            }
                            // Discord asks for a wait of 1 to 5 s before identifying again.
                            let wait = Duration::from_millis(1000 + (fraction() * 4000.0) as u64);
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = self.stop.changed() => return Ended::Stop,
                            }
                            return Ended::Retry("the session was invalidated".into());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Waits for HELLO and returns its heartbeat interval.
async fn hello(ws: &mut Socket) -> Option<Duration> {
    while let Some(Ok(message)) = ws.next().await {
        if let WsMessage::Text(text) = message {
            let frame: Frame = serde_json::from_str(text.as_str()).ok()?;
            if frame.op == op::HELLO {
                let ms = frame.d["heartbeat_interval"].as_u64()?.clamp(1_000, 120_000);
                return Some(Duration::from_millis(ms));
            }
        }
    }
    None
}

/// What a close code means for the next attempt.
fn closed(code: Option<u16>, session: &mut Option<Session>) -> Ended {
    match code {
        Some(4004) => Ended::Fatal("the bot token was rejected (close code 4004)".into()),
        Some(4013) => Ended::Fatal("the gateway refused the intents (close code 4013)".into()),
        Some(4014) => Ended::Fatal(
            "the Message Content intent is not enabled for this bot (close code 4014): turn it on in the Developer Portal's Bot page".into(),
        ),
        Some(code @ (4010..=4012)) => Ended::Fatal(format!("the gateway refused the connection (close code {code})")),
        Some(code @ (4007 | 4009)) => {
            *session = None;
            Ended::Retry(format!("the session ended (close code {code})"))
        }
        Some(code) => Ended::Retry(format!("closed by the gateway (code {code})")),
        None => Ended::Retry("closed by the gateway".into()),
    }
}

fn describe(e: &RestError) -> String {
    match e {
        RestError::RateLimited { retry_after, .. } => format!("rate limited for {retry_after:?}"),
        RestError::Transient(why) => why.clone(),
        RestError::Refused { status, message, .. } => format!("{status} {message}"),
    }
}

/// A number in [0, 1) that differs between calls (for jitter, not secrets).
fn fraction() -> f64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mixed = u64::from(nanos).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

/// `wait` give or take a quarter.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.75 + fraction() / 2.0)
}
