//! Slack's Web API: one POST per call (`{api_url}{method}` with a JSON body and
//! a bearer token), with Slack's `{"ok": false, "error": …}` answers and HTTP
//! 429s sorted into what the gateway can act on. Nothing is retried here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_channel_core::ChannelError;

/// A call that gets no answer in this long failed (transiently).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 429: wait this long (`Retry-After`), for this method.
    RateLimited(Duration),
    /// Network trouble or a 5xx.
    Transient(String),
    /// `ok: false` with Slack's error code (`channel_not_found`, `invalid_auth`).
    Refused(String),
}

impl ApiError {
    /// Slack's error code, when Slack refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused(code) => Some(code),
            _ => None,
        }
    }

    /// The token was refused.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some("invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive")
        )
    }

    /// As the gateway reads failures. `method` names the call.
    pub fn into_channel(self, method: &str) -> ChannelError {
        match self {
            ApiError::RateLimited(wait) => ChannelError::RateLimited(wait),
            ApiError::Transient(why) => ChannelError::Transient(format!("slack: {method}: {why}")),
            e if e.is_auth() => ChannelError::Rejected(format!(
                "slack: the token was refused ({method}: {})",
                e.code().unwrap_or_default()
            )),
            ApiError::Refused(code) => ChannelError::Rejected(format!("slack: {method}: {code}")),
        }
    }
}

/// The Web API client of one token. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `https://slack.com/api/`, always ending in `/`.
    base: String,
    authorization: String,
    /// Slack limits each method on its own: after a 429, calls of that method
    /// wait (answered as rate limited, without a request) until this instant.
    limited: Arc<Mutex<HashMap<String, Instant>>>,
    /// Recent calls of the methods with a known per-minute budget.
    recent: Arc<Mutex<HashMap<&'static str, VecDeque<Instant>>>>,
}

/// Methods whose workspace-wide limit is known, and the calls a minute kept
/// under it: `chat.update` (Tier 3, about 50 a minute) carries every streamed
/// reply of every chat.
const BUDGETS: &[(&str, usize)] = &[("chat.update", 45)];
const BUDGET_WINDOW: Duration = Duration::from_secs(60);

impl Api {
    /// A client for `api_url` that authenticates with `token`.
    pub fn new(api_url: &str, token: &str) -> Result<Api, ChannelError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ChannelError::Rejected(format!("slack: cannot build an HTTP client: {e}")))?;
        let base = format!("{}/", api_url.trim_end_matches('/'));
        Ok(Api {
            http,
            base,
            authorization: format!("Bearer {token}"),
            limited: Arc::default(),
            recent: Arc::default(),
        })
    }

    /// Calls `method` with `body` (JSON); the answer when Slack says `ok`.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        self.call_with_scopes(method, body).await.map(|(answer, _)| answer)
    }

    /// As [`Api::call`], with the token's scopes (`x-oauth-scopes`), when Slack says.
    pub async fn call_with_scopes(&self, method: &str, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        if let Some(left) = self.wait_left(method).or_else(|| self.over_budget(method)) {
            return Err(ApiError::RateLimited(left));
        }
        let request =
            self.http.post(format!("{}{method}", self.base)).header("Authorization", &self.authorization).json(body);
        let result = post(request).await;
        if let Err(ApiError::RateLimited(wait)) = &result {
            self.limited
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(method.to_string(), Instant::now() + *wait);
        }
        result
    }

    /// How long until `method` is within its per-minute budget again, counting
    /// this call when it is.
    fn over_budget(&self, method: &str) -> Option<Duration> {
        let (name, budget) = BUDGETS.iter().find(|(name, _)| *name == method)?;
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let calls = recent.entry(name).or_default();
        let now = Instant::now();
        while calls.front().is_some_and(|at| now.duration_since(*at) >= BUDGET_WINDOW) {
            calls.pop_front();
        }
        if calls.len() >= *budget {
            return calls.front().map(|oldest| BUDGET_WINDOW.saturating_sub(now.duration_since(*oldest)));
        }
        calls.push_back(now);
        None
    }

    /// What is left of a rate limit on `method`.
    fn wait_left(&self, method: &str) -> Option<Duration> {
        let until = *self.limited.lock().unwrap_or_else(PoisonError::into_inner).get(method)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// POSTs `body` to a `response_url` Slack gave (a slash command's or a press's).
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), ApiError> {
        // Only Slack's own (a fake's share the API's origin): a response URL comes in
        // a payload, and must not make the daemon post anywhere else.
        let slacks =
            response_url.starts_with("https://hooks.slack.com/") || response_url.starts_with("https://slack.com/");
        if !slacks && !response_url.starts_with(&format!("{}/", origin(&self.base))) {
            return Err(ApiError::Refused("not a Slack response URL".into()));
        }
        post(self.http.post(response_url).json(body)).await.map(|_| ())
    }
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// The answer, and the token's scopes when Slack lists them.
async fn post(request: reqwest::RequestBuilder) -> Result<(Value, Option<String>), ApiError> {
    let response = request.send().await.map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
    let status = response.status();
    let scopes = response.headers().get("x-oauth-scopes").and_then(|v| v.to_str().ok()).map(str::to_string);
    if status.as_u16() == 429 {
        let secs = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        return Err(ApiError::RateLimited(Duration::from_secs_f64(secs.unwrap_or(1.0).clamp(0.0, 3600.0))));
    }
    if status.is_server_error() {
        return Err(ApiError::Transient(format!("{} from Slack", status.as_u16())));
    }
    let text = response.text().await.map_err(|e| ApiError::Transient(e.without_url().to_string()))?;
    // A response URL answers plain "ok".
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if json.is_null() {
        return if status.is_success() {
            Ok((Value::Null, scopes))
        } else {
            Err(ApiError::Refused(format!("http_{}", status.as_u16())))
        };
    }
    if json["ok"] == true {
        return Ok((json, scopes));
    }
    let code: String = json["error"].as_str().unwrap_or("unknown_error").chars().take(80).collect();
    Err(if code == "ratelimited" { ApiError::RateLimited(Duration::from_secs(1)) } else { ApiError::Refused(code) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_update_keeps_under_its_budget_for_every_chat_together() {
        let api = Api::new("http://127.0.0.1:9/api/", "xoxb-test").unwrap();
        for _ in 0..45 {
            assert_eq!(api.over_budget("chat.update"), None);
        }
        let wait = api.over_budget("chat.update").expect("the 46th in a minute waits");
        assert!(wait > Duration::from_secs(55) && wait <= BUDGET_WINDOW, "{wait:?}");
        assert_eq!(api.over_budget("chat.postMessage"), None, "other methods have their own limits");
    }

    #[test]
    fn origins_stop_at_the_path() {
        assert_eq!(origin("http://127.0.0.1:9/api/"), "http://127.0.0.1:9");
        assert_eq!(origin("https://slack.com"), "https://slack.com");
    }

    #[test]
    fn refusals_and_limits_map_to_what_the_gateway_does() {
        assert_eq!(
            ApiError::RateLimited(Duration::from_secs(3)).into_channel("chat.postMessage"),
            ChannelError::RateLimited(Duration::from_secs(3))
        );
        assert!(
            matches!(ApiError::Refused("invalid_auth".into()).into_channel("auth.test"), ChannelError::Rejected(m) if m.contains("token was refused"))
        );
        assert!(matches!(ApiError::Transient("x".into()).into_channel("chat.update"), ChannelError::Transient(_)));
    }
}
