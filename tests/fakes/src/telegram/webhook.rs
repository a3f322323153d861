//! Delivers one update to the bot's webhook: a raw HTTP/1.1 POST, like Telegram's.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for connecting, sending and reading the status line.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// POSTs `body` as JSON to an `http://` URL and returns the response status,
/// or 0 if the URL is not plain HTTP, the connection fails or no status line
/// arrives within 10 seconds.
pub async fn post(url: &str, secret: Option<&str>, body: &str) -> u16 {
    let Some((authority, path)) = split_url(url) else { return 0 };
    tokio::time::timeout(DELIVERY_TIMEOUT, exchange(authority, path, secret, body)).await.ok().flatten().unwrap_or(0)
}

/// `("host:port", "/path?query")` of an `http://` URL (port defaults to 80).
fn split_url(url: &str) -> Option<(String, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit('@').next()?;
    let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    Some((authority, path))
}

async fn exchange(authority: String, path: &str, secret: Option<&str>, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(&authority).await.ok()?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if let Some(secret) = secret {
        request.push_str(&format!("{SECRET_HEADER}: {secret}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ').nth(1)?.trim().parse().ok()
}
