//! Minimal raw HTTP/1.1 client shared by the fakes' tests: one request per connection, read to EOF.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("response body is JSON")
    }

    /// Payloads of the SSE `data:` lines, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                event.strip_prefix("data: ").unwrap_or_else(|| panic!("SSE event without data: {event:?}")).to_owned()
            })
            .collect()
    }

    /// SSE payloads parsed as JSON, without the final `[DONE]`.
    pub fn sse_json(&self) -> Vec<Value> {
        let data = self.sse_data();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "stream ends with [DONE]");
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).expect("SSE chunk is JSON")).collect()
    }
}

/// The raw request bytes: HTTP/1.1 with `Connection: close`.
pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    request
}

pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to fake");
    let request = raw_request(method, path, headers, body);
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    parse(&raw)
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> HttpResponse {
    let headers = [("Content-Type", "application/json")];
    send(addr, "POST", path, &headers, &body.to_string()).await
}

pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    send(addr, "GET", path, &[], "").await
}

fn parse(raw: &[u8]) -> HttpResponse {
    let split = find(raw, b"\r\n\r\n").expect("end of response head");
    let head = std::str::from_utf8(&raw[..split]).expect("UTF-8 response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let payload = &raw[split + 4..];
    let body = if headers.get("transfer-encoding").is_some_and(|te| te == "chunked") {
        dechunk(payload)
    } else {
        payload.to_vec()
    };
    HttpResponse { status, headers, body: String::from_utf8(body).expect("UTF-8 body") }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("chunk size line");
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    body
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
