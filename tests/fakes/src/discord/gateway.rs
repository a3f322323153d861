//! The fake's Gateway WebSocket: HELLO, IDENTIFY (READY and a GUILD_CREATE per
//! guild) or RESUME (the missed dispatches replayed, then RESUMED), heartbeats
//! acknowledged unless the test made the connection silent, and the session's
//! dispatches sent in order. Plain JSON text frames, as serenity and discord.py
//! both accept.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::state::{Session, Shared, State, APP_ID};

/// Accepts connections until the listener's task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    crate::server::accept_each(listener, move |stream| connection(stream, shared.clone())).await
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn send(ws: &mut Ws, value: Value) -> bool {
    ws.send(Message::text(value.to_string())).await.is_ok()
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (number, interval) = {
        let mut state = shared.lock();
        state.connections += 1;
        (state.connections, state.heartbeat_ms)
    };
    if !send(&mut ws, json!({"op": 10, "d": {"heartbeat_interval": interval}, "s": null, "t": null})).await {
        return;
    }
    // The dispatches this connection has sent, by sequence number; None until it identified or resumed.
    let mut cursor: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    return close(&mut ws, 4002, "Error while decoding payload.").await;
                };
                match frame["op"].as_u64() {
                    Some(1) => {
                        // A silent connection acknowledges nothing.
                        let silent = shared.lock().silent == Some(number);
                        let acked = silent || send(&mut ws, json!({"op": 11, "d": null})).await;
                        if !acked {
                            return;
                        }
                    }
                    Some(2) => {
                        if cursor.is_some() {
                            return close(&mut ws, 4005, "Already authenticated.").await;
                        }
                        if frame["d"]["token"].as_str() != Some(super::token().as_str()) {
                            return close(&mut ws, 4004, "Authentication failed.").await;
                        }
                        let intents = frame["d"]["intents"].as_u64().unwrap_or(0);
                        cursor = Some(identify(&shared, number, intents));
                    }
                    Some(6) => {
                        let d = &frame["d"];
                        let resumed = {
                            let mut state = shared.lock();
                            let current = state.session.as_ref().map(|s| s.id.clone());
                            let ok = d["token"].as_str() == Some(super::token().as_str())
                                && current.is_some() && d["session_id"].as_str() == current.as_deref();
                            if ok {
                                state.resumes += 1;
                            }
                            ok
                        };
                        if resumed {
                            cursor = Some(d["seq"].as_u64().unwrap_or(0));
                            send_pending(&shared, &mut ws, &mut cursor).await;
                            let seq = cursor.unwrap_or(0);
                            if !send(&mut ws, json!({"op": 0, "t": "RESUMED", "s": seq, "d": {}})).await {
                                return;
                            }
                        } else if !send(&mut ws, json!({"op": 9, "d": false})).await {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {}
            _ = shared.wake.notified() => {}
        }
        let close_with = shared.lock().close_with.take();
        if let Some(code) = close_with {
            if matches!(code, 4007 | 4009) {
                // Invalid sequence, session timed out: the session cannot be resumed.
                shared.lock().session = None;
            }
            return close(&mut ws, code, "closed by the test").await;
        }
        if shared.lock().silent != Some(number) && !send_pending(&shared, &mut ws, &mut cursor).await {
            return;
        }
    }
}

/// A fresh session: READY, then each guild.
fn identify(shared: &Shared, number: u64, intents: u64) -> u64 {
    shared.change(|state| {
        state.identifies += 1;
        let id = format!("session-{number}-{}", state.identifies);
        let guilds: Vec<String> = state.guilds.keys().cloned().collect();
        state.session = Some(Session { id: id.clone(), log: Vec::new(), intents });
        let ready = json!({
            "v": 10, "user": State::bot_json(), "session_id": id, "resume_gateway_url": state.gateway_url,
            "guilds": guilds.iter().map(|g| json!({"id": g, "unavailable": true})).collect::<Vec<_>>(),
            "application": {"id": APP_ID, "flags": 1u64 << 19}, "private_channels": [], "relationships": [],
            "shard": [0, 1],
        });
        state.dispatch("READY", ready);
        for guild in guilds {
            let data = state.guild_json(&guild);
            state.dispatch("GUILD_CREATE", data);
        }
        0
    })
}

/// Sends the session's dispatches past `cursor`.
async fn send_pending(shared: &Shared, ws: &mut Ws, cursor: &mut Option<u64>) -> bool {
    let Some(after) = *cursor else { return true };
    let pending: Vec<Value> = {
        let state = shared.lock();
        let Some(session) = state.session.as_ref() else { return true };
        session
            .log
            .iter()
            .filter(|d| d.seq > after)
            .map(|d| json!({"op": 0, "s": d.seq, "t": d.name, "d": d.data}))
            .collect()
    };
    for frame in pending {
        let seq = frame["s"].as_u64();
        if !send(ws, frame).await {
            return false;
        }
        *cursor = seq;
    }
    true
}

async fn close(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
    let _ = ws.close(Some(frame)).await;
}
