//! setWebhook / getWebhookInfo / deleteWebhook and delivery to a local receiver.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{bounded, call, ok};
use crate::telegram::FakeTelegram;
use crate::test_client::send;

const CONFLICT: &str =
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// One request as the receiver saw it.
struct Received {
    /// Request line and headers.
    head: String,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }
}

/// A tiny HTTP server on 127.0.0.1 answering one request per status in
/// `statuses`; returns its `/hook` URL and the requests it got.
async fn receiver(statuses: &'static [u16]) -> (String, JoinHandle<Vec<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("receiver address"));
    let task = tokio::spawn(async move {
        let mut received = Vec::new();
        for status in statuses {
            let (mut stream, _) = listener.accept().await.expect("accept webhook delivery");
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut buf).await.expect("read delivery");
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let request = Received { head: head.to_owned(), body: body.to_owned() };
                    let length: usize = request.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    if body.len() >= length || n == 0 {
                        break (head.to_owned(), body.to_owned());
                    }
                }
                assert!(n > 0, "delivery ended before its head");
            };
            let response = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(response.as_bytes()).await.expect("write response");
            received.push(Received { head, body });
        }
        received
    });
    (url, task)
}

/// A multipart/form-data body, the way teloxide sends setWebhook.
fn multipart(boundary: &str, fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

#[tokio::test]
async fn an_active_webhook_blocks_get_updates_until_deleted() {
    let tg = FakeTelegram::start().await;
    let id = tg.send_dm(42, "queued");
    assert_eq!(ok(&tg, "SetWebhook", json!({"url": "http://127.0.0.1:9/hook"})).await, true);
    assert_eq!(tg.webhook(), Some(("http://127.0.0.1:9/hook".to_owned(), None)));

    let (status, reply) = call(&tg, "GetUpdates", json!({"timeout": 5})).await;
    assert_eq!(status, 409);
    assert_eq!(reply, json!({"ok": false, "error_code": 409, "description": CONFLICT}));

    let info = ok(&tg, "GetWebhookInfo", json!({})).await;
    assert_eq!(info["url"], "http://127.0.0.1:9/hook");
    assert_eq!(info["has_custom_certificate"], false);
    assert_eq!(info["pending_update_count"], 1);

    assert_eq!(ok(&tg, "DeleteWebhook", json!({})).await, true);
    assert_eq!(tg.webhook(), None);
    assert_eq!(ok(&tg, "GetWebhookInfo", json!({})).await["url"], "");
    assert_eq!(ok(&tg, "GetUpdates", json!({})).await[0]["update_id"], id);
}

#[tokio::test]
async fn deliver_webhook_posts_the_update_with_the_secret_header() {
    let tg = FakeTelegram::start().await;
    let (url, receiver) = receiver(&[503, 200]).await;
    let boundary = "teloxide-like-boundary";
    let fields = [("url", url.as_str()), ("secret_token", "s3cret-token_1"), ("allowed_updates", "[\"message\"]")];
    let path = format!("/bot{}/SetWebhook", tg.token());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [("Content-Type", content_type.as_str())];
    let response = bounded("setWebhook", send(tg.addr(), "POST", &path, &headers, &multipart(boundary, &fields))).await;
    assert_eq!(response.json(), json!({"ok": true, "result": true}));
    assert_eq!(tg.webhook(), Some((url.clone(), Some("s3cret-token_1".to_owned()))));
    assert_eq!(tg.last_allowed_updates(), Some(vec!["message".to_owned()]));

    let id = tg.send_dm(42, "via webhook");
    let deliver = |tg: FakeTelegram| async move {
        tokio::time::timeout(Duration::from_secs(15), tg.deliver_webhook(id)).await.expect("delivery finished")
    };
    assert_eq!(deliver(tg.clone()).await, 503);
    assert_eq!(
        ok(&tg, "GetWebhookInfo", json!({})).await["pending_update_count"],
        1,
        "a failed delivery stays pending"
    );
    assert_eq!(deliver(tg.clone()).await, 200);
    assert_eq!(ok(&tg, "GetWebhookInfo", json!({})).await["pending_update_count"], 0);

    let received = tokio::time::timeout(Duration::from_secs(5), receiver).await.expect("receiver done").expect("task");
    for request in &received {
        assert!(request.head.starts_with("POST /hook HTTP/1.1\r\n"), "{}", request.head);
        assert_eq!(request.header("x-telegram-bot-api-secret-token").as_deref(), Some("s3cret-token_1"));
        assert_eq!(request.header("content-type").as_deref(), Some("application/json"));
        let update: Value = serde_json::from_str(&request.body).expect("update JSON");
        assert_eq!(update["update_id"], id);
        assert_eq!(update["message"]["text"], "via webhook");
        assert_eq!(update["message"]["chat"]["id"], 42);
    }
    assert_eq!(received.len(), 2);
}
