//! The fake's Socket Mode server: `hello`, then every pending envelope in
//! order; one not acknowledged within 3 s is sent again with `retry_attempt`
//! raised (as Slack does); a test can ask for a reconnect (`disconnect`) or
//! drop the socket. After a `disconnect` the old socket still takes
//! acknowledgements, sending nothing more, until the app closes it or a second
//! has passed: Slack closes it shortly after, not at once (how long it waits is
//! not documented; a client that blocks until the old socket closes, as
//! slack_sdk's built-in one does, must still acknowledge within 3 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::state::{Shared, ACK_DEADLINE, APP_ID};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    crate::server::accept_each(listener, move |stream| connection(stream, shared.clone())).await
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn send(ws: &mut Ws, value: Value) -> bool {
    ws.send(Message::text(value.to_string())).await.is_ok()
}

/// An open connection, listed in `live` until it ends.
struct Live<'a>(&'a Shared, u64);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.lock().live.retain(|n| *n != self.1);
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let number = {
        let mut state = shared.lock();
        state.connections += 1;
        let number = state.connections;
        state.live.push(number);
        number
    };
    let _live = Live(&shared, number);
    let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID},
        "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060}});
    if !send(&mut ws, hello).await {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => take_acknowledgement(&shared, &text),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {}
            _ = shared.wake.notified() => {}
        }
        let (disconnect, drop_now) = {
            let mut state = shared.lock();
            if state.connections != number && !state.spread {
                // A newer connection takes over the envelopes.
                (None, false)
            } else {
                (state.disconnect.take(), std::mem::take(&mut state.drop_connection))
            }
        };
        if drop_now {
            return;
        }
        if let Some(reason) = disconnect {
            let _ =
                send(&mut ws, json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}))
                    .await;
            // Envelopes wait for the new connection; this one still takes
            // acknowledgements until the app closes it, at most for a while.
            let _ = tokio::time::timeout(OLD_SOCKET_KEPT, async {
                while let Some(Ok(frame)) = ws.next().await {
                    match frame {
                        Message::Text(text) => take_acknowledgement(&shared, &text),
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            })
            .await;
            let _ = ws.close(None).await;
            return;
        }
        if shared.lock().connections != number && !shared.lock().spread {
            continue;
        }
        for frame in due(&shared, number) {
            if !send(&mut ws, frame).await {
                return;
            }
        }
    }
}

/// How long a socket that was sent `disconnect` is kept open for the app's last
/// acknowledgements, at most.
const OLD_SOCKET_KEPT: Duration = Duration::from_secs(1);

/// Records an acknowledgement frame (`{"envelope_id": ...}`), the first for its envelope.
fn take_acknowledgement(shared: &Shared, text: &str) {
    let Ok(ack) = serde_json::from_str::<Value>(text) else { return };
    if let Some(id) = ack["envelope_id"].as_str() {
        let mut state = shared.lock();
        if let Some(e) = state.envelopes.iter_mut().find(|e| e.id == id && e.acked_after.is_none()) {
            e.acked_after = e.sent_at.map(|at| at.elapsed());
        }
    }
}

/// Events are redelivered at most this many times; slash commands and presses
/// never (the person sees a timeout instead).
const EVENT_RETRIES: u64 = 3;

/// Envelopes to send now on connection `number`: never sent, or an event
/// unacknowledged past the deadline; when spreading, only those whose turn
/// falls on this connection.
fn due(shared: &Shared, number: u64) -> Vec<Value> {
    let mut state = shared.lock();
    let state = &mut *state;
    let mut out = Vec::new();
    for e in state.envelopes.iter_mut().filter(|e| e.acked_after.is_none()) {
        let retriable = e.kind == "events_api" && e.attempts <= EVENT_RETRIES;
        let redeliver =
            retriable && e.sent_at.is_some_and(|at| at.elapsed() >= ACK_DEADLINE * (1 << e.attempts.min(3)) as u32 / 2);
        if e.sent_at.is_some() && !redeliver {
            continue;
        }
        if state.spread && !state.live.is_empty() {
            let pinned = e.target.filter(|n| state.live.contains(n));
            let target = pinned.unwrap_or_else(|| state.live[state.next_turn % state.live.len()]);
            if target != number {
                continue;
            }
            state.next_turn += 1;
        }
        e.connection = Some(number);
        let retry = e.attempts;
        e.attempts += 1;
        e.sent_at = Some(Instant::now());
        out.push(json!({
            "envelope_id": e.id, "type": e.kind, "payload": e.payload,
            "accepts_response_payload": e.kind != "events_api",
            "retry_attempt": retry, "retry_reason": if retry > 0 { "timeout" } else { "" },
        }));
    }
    out
}
