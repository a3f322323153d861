//! A client for OpenAI-compatible `/chat/completions` with streaming, tool calls,
//! reasoning deltas, usage, and retries with backoff for 429, 5xx and network failures.

mod chunk;
mod error;
mod reply;
mod request;
mod sse;

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use error::{excerpt, LlmError};
pub use reply::{Delta, ModelReply};
pub use request::{ChatRequest, Tools};

use crate::config::LlmSettings;
use crate::metrics::{ModelError, ModelOutcome};
use error::{error_detail, parse_retry_after};
use reply::ReplyBuilder;
use request::Shape;
use sse::SseDecoder;

/// The longest we wait before a retry, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Request fields not every OpenAI-compatible server accepts.
const OPTIONAL_FIELDS: &[&str] = &["stream_options", "parallel_tool_calls", "tool_choice"];

fn rejects_optional_fields(error: &LlmError) -> bool {
    match error {
        LlmError::Status { status: 400 | 422, detail, .. } => {
            OPTIONAL_FIELDS.iter().any(|f| detail.contains(f))
                || detail.contains("include_usage")
                || detail.to_ascii_lowercase().contains("tool choice")
        }
        _ => false,
    }
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    base_url: String,
    /// `{base_url}/chat/completions`, parsed once (reqwest parses a URL given as
    /// text on every call); the text when it does not parse, which then fails at
    /// the call as it always did.
    completions: Result<reqwest::Url, String>,
    api_key: Option<String>,
    timeout: Duration,
    max_retries: u32,
    stream: bool,
}

/// A failed attempt, and whether output had already reached the caller (then a
/// retry would repeat it, so we do not retry).
struct Failed {
    error: LlmError,
    emitted: bool,
}

impl From<LlmError> for Failed {
    fn from(error: LlmError) -> Self {
        Failed { error, emitted: false }
    }
}

impl LlmClient {
    pub fn new(settings: &LlmSettings) -> LlmClient {
        let timeout = Duration::from_secs(settings.request_timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        let completions = format!("{base_url}/chat/completions");
        LlmClient {
            http,
            completions: reqwest::Url::parse(&completions).map_err(|_| completions),
            base_url,
            api_key: settings.api_key.clone().filter(|k| !k.is_empty()),
            timeout,
            max_retries: settings.max_retries,
            stream: settings.stream,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One model call. Partial output goes to `on_delta` as it streams in.
    pub async fn complete(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(Delta) + Send),
        cancel: &CancellationToken,
    ) -> Result<ModelReply, LlmError> {
        let began = std::time::Instant::now();
        let result = self.call(request, on_delta, cancel).await;
        let metrics = crate::metrics::global();
        let (outcome, class) = match &result {
            Ok(reply) => {
                if let Some(usage) = &reply.usage {
                    metrics.model_tokens(usage.prompt_tokens, usage.completion_tokens);
                }
                (ModelOutcome::Ok, ModelError::None)
            }
            Err(LlmError::Cancelled) => (ModelOutcome::Cancelled, ModelError::None),
            Err(e) => (ModelOutcome::Error, e.class()),
        };
        metrics.model_request(outcome, class, began.elapsed());
        result
    }

    /// [`LlmClient::complete`] with its retries, unmeasured.
    async fn call(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(Delta) + Send),
        cancel: &CancellationToken,
    ) -> Result<ModelReply, LlmError> {
        let mut shape = Shape { stream: self.stream, optional_fields: true };
        let mut body = request.body(shape);
        let mut attempt = 0;
        loop {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                outcome = self.attempt(&body, on_delta) => outcome,
            };
            let failed = match outcome {
                Ok(reply) => return Ok(reply),
                Err(failed) => failed,
            };
            // Some servers refuse the optional fields; ask once more without them.
            if shape.optional_fields && rejects_optional_fields(&failed.error) {
                shape.optional_fields = false;
                body = request.body(shape);
                tracing::info!("the model endpoint refused optional request fields; retrying without them");
                continue;
            }
            // An empty stream: once more, asking for the whole reply.
            if failed.error == LlmError::EmptyStream && !failed.emitted && shape.stream {
                shape.stream = false;
                body = request.body(shape);
                tracing::info!("the model endpoint sent an empty stream; asking again without streaming");
                continue;
            }
            if failed.emitted || !failed.error.is_retryable() || attempt >= self.max_retries {
                return Err(failed.error);
            }
            let wait = failed.error.retry_after().unwrap_or(FIRST_BACKOFF * 2u32.pow(attempt)).min(MAX_RETRY_WAIT);
            tracing::warn!(attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %failed.error, "model call failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(LlmError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        body: &bytes::Bytes,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<ModelReply, Failed> {
        let request = match &self.completions {
            Ok(url) => self.http.post(url.clone()),
            Err(text) => self.http.post(text),
        };
        let mut request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = self.within(request.send()).await?.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
            let text = self.within(response.text()).await?.unwrap_or_default();
            return Err(LlmError::Status { status: status.as_u16(), detail: error_detail(&text), retry_after }.into());
        }
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let mut builder = ReplyBuilder::default();
        if is_json {
            let text = self.within(response.text()).await?.map_err(|e| self.transport_error(e))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|_| LlmError::Malformed(format!("not JSON: {}", excerpt(&text, 120))))?;
            for delta in builder.apply_completion(&value)? {
                on_delta(delta);
            }
            return Ok(builder.finish());
        }
        self.read_stream(response, &mut builder, on_delta).await?;
        Ok(builder.finish())
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        builder: &mut ReplyBuilder,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<(), Failed> {
        let mut emitted = false;
        let fail = |error: LlmError, emitted: bool| Failed { error, emitted };
        let mut bytes = response.bytes_stream();
        let mut decoder = SseDecoder::default();
        let mut done = false;
        while !done {
            let payloads = match tokio::time::timeout(self.timeout, bytes.next()).await {
                Err(_) => return Err(fail(LlmError::Timeout { secs: self.timeout.as_secs() }, emitted)),
                Ok(None) => {
                    done = true;
                    decoder.finish()
                }
                Ok(Some(Err(e))) => return Err(fail(self.transport_error(e), emitted)),
                Ok(Some(Ok(chunk))) => decoder.push(&chunk),
            };
            for payload in payloads {
                if payload.trim() == "[DONE]" {
                    done = true;
                    break;
                }
                for delta in builder.apply_event(&payload).map_err(|e| fail(e, emitted))? {
                    emitted = true;
                    on_delta(delta);
                }
            }
        }
        if !builder.started() {
            return Err(fail(LlmError::EmptyStream, emitted));
        }
        Ok(())
    }

    /// `GET {base_url}/models`: the model ids the endpoint serves.
    pub async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let mut request =
            self.http.get(format!("{}/models", self.base_url)).timeout(self.timeout.min(Duration::from_secs(15)));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            return Err(LlmError::Status { status: status.as_u16(), detail: error_detail(&text), retry_after: None });
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| LlmError::Malformed(format!("not JSON: {}", excerpt(&text, 120))))?;
        let data = value
            .get("data")
            .or_else(|| value.get("models"))
            .and_then(Value::as_array)
            .ok_or_else(|| LlmError::Malformed("the model list has no \"data\" array".into()))?;
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").or_else(|| m.get("name")).and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// The context size (tokens) the server runs `model` with, where it says:
    /// llama.cpp's `GET /props` (`default_generation_settings.n_ctx`), else the
    /// model list's `max_model_len` (vLLM), `context_length`, or `meta.n_ctx_train`
    /// (llama.cpp's trained size). `None` when it does not say or cannot be asked.
    pub async fn context_size(&self, model: &str) -> Option<u64> {
        let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
        if let Some(props) = self.get_json(&format!("{root}/props")).await {
            let n_ctx = props.pointer("/default_generation_settings/n_ctx").and_then(Value::as_u64);
            if let Some(n) = n_ctx.filter(|n| *n > 0) {
                return Some(n);
            }
        }
        let list = self.get_json(&format!("{}/models", self.base_url)).await?;
        let entries = list.get("data").or_else(|| list.get("models")).and_then(Value::as_array)?;
        let entry = entries.iter().find(|m| {
            let id = m.get("id").or_else(|| m.get("name")).and_then(Value::as_str).unwrap_or_default();
            id == model || id.strip_suffix(":latest") == Some(model)
        })?;
        ["/max_model_len", "/context_length", "/meta/n_ctx_train"]
            .iter()
            .find_map(|p| entry.pointer(p).and_then(Value::as_u64))
            .filter(|n| *n > 0)
    }

    /// A GET that answers JSON, or `None`.
    async fn get_json(&self, url: &str) -> Option<Value> {
        let mut request = self.http.get(url).timeout(self.timeout.min(Duration::from_secs(15)));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        serde_json::from_str(&response.text().await.ok()?).ok()
    }

    async fn within<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, Failed> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| LlmError::Timeout { secs: self.timeout.as_secs() }.into())
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            return LlmError::Timeout { secs: self.timeout.as_secs() };
        }
        // The innermost cause says what actually happened ("Connection refused").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        LlmError::Unreachable { url: self.base_url.clone(), detail: excerpt(&cause.to_string(), 160) }
    }
}
