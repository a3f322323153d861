//! Shared test helpers: a channel started against `FakeTelegram`, bounded waits.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_channel_core::{Channel, ChatKey, CommandSpec};
use switchboard_channel_telegram::{TelegramChannel, TelegramConfig};
use switchboard_fakes::FakeTelegram;
pub use switchboard_fakes::RecordingSink;

/// The commands the tests register.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "help", description: "Show help", argument: None },
    CommandSpec { name: "new", description: "Start a new conversation", argument: Some("reason") },
];

pub const WAIT: Duration = Duration::from_secs(10);

pub fn config(fake: &FakeTelegram) -> TelegramConfig {
    let mut config = TelegramConfig::new(fake.token());
    config.api_url = fake.api_url();
    config.poll_timeout_secs = 5;
    config.commands = COMMANDS;
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
