//! Delivers one update to the bot's webhook: a raw HTTP/1.1 POST, like Telegram's.

pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// POSTs `body` as JSON to an `http://` URL and returns the response status,
/// or 0 if the URL is not plain HTTP, the connection fails or no status line
/// arrives within 10 seconds.
pub async fn post(url: &str, secret: Option<&str>, body: &str) -> u16 {
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if let Some(secret) = secret {
        headers.push((SECRET_HEADER, secret.to_string()));
    }
    crate::http_post::post(url, &headers, body.as_bytes()).await
}
