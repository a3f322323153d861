//! Shared test helpers: a recording sink, a channel started against `FakeTelegram`, bounded waits.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_channel_core::{Channel, ChatKey, Click, Inbound, InboundEvent, InboundKind, InboundSink};
use switchboard_channel_telegram::{TelegramChannel, TelegramConfig};
use switchboard_fakes::FakeTelegram;

pub const WAIT: Duration = Duration::from_secs(10);

/// Collects delivered events; can be told to refuse the next N deliveries.
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<InboundEvent>>,
    /// Every call of `deliver`, refused ones included.
    attempts: AtomicUsize,
    refuse: AtomicUsize,
}

impl RecordingSink {
    pub fn new() -> Arc<RecordingSink> {
        Arc::new(RecordingSink::default())
    }

    /// The next `n` deliveries fail.
    pub fn refuse_next(&self, n: usize) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<InboundEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events were accepted and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<InboundEvent> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for {n} events; got {events:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last accepted event, which must be a message.
    pub async fn message(&self, n: usize) -> (String, Inbound) {
        let event = self.wait_for(n).await.remove(n - 1);
        match event.kind {
            InboundKind::Message(inbound) => (event.event_id, inbound),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub async fn click(&self, n: usize) -> (String, Click) {
        let event = self.wait_for(n).await.remove(n - 1);
        match event.kind {
            InboundKind::Click(click) => (event.event_id, click),
            other => panic!("expected a click, got {other:?}"),
        }
    }
}

#[async_trait]
impl InboundSink for RecordingSink {
    async fn deliver(&self, event: InboundEvent) -> Result<(), String> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let refused = self.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if refused {
            return Err("journal unavailable (test)".to_owned());
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }
}

pub fn config(fake: &FakeTelegram) -> TelegramConfig {
    let mut config = TelegramConfig::new(fake.token());
    config.api_url = fake.api_url();
    config.poll_timeout_secs = 5;
    config.commands = vec![("help".into(), "Show help".into()), ("new".into(), "Start a new conversation".into())];
    config
}

/// A polling channel, started, with its sink.
pub async fn started(fake: &FakeTelegram) -> (TelegramChannel, Arc<RecordingSink>) {
    let channel = TelegramChannel::new(config(fake)).expect("valid config");
    let sink = RecordingSink::new();
    channel.start(sink.clone()).await.expect("start");
    (channel, sink)
}

pub fn key(chat: i64, thread: Option<i64>) -> ChatKey {
    ChatKey {
        channel: "telegram".into(),
        account: "999".into(),
        chat: chat.to_string(),
        thread: thread.map(|t| t.to_string()),
    }
}

/// Polls `channel.status()` until `f` accepts it; returns it.
pub async fn wait_status(channel: &TelegramChannel, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let status = channel.status();
        if f(&status) {
            return status;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for status {what}; last: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A one-shot HTTP/1.1 POST over a raw TCP stream; returns the status code.
pub async fn raw_post(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("response in time").expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line in {text:?}"))
}
