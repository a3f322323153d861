//! A raw HTTP/1.1 POST to an app's endpoint, the way a platform delivers a
//! webhook: the fakes use it to push events to an app listening on 127.0.0.1.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for connecting, sending and reading the status line.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` with `headers` to an `http://` URL and returns the response
/// status, or 0 if the URL is not plain HTTP, the connection fails or no status
/// line arrives within 10 seconds.
pub async fn post(url: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let Some((authority, path)) = split_url(url) else { return 0 };
    tokio::time::timeout(DELIVERY_TIMEOUT, exchange(authority, path, headers, body)).await.ok().flatten().unwrap_or(0)
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

async fn exchange(authority: String, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(&authority).await.ok()?;
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.ok()?;
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
