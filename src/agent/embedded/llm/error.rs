//! Why a model call failed, worded for a person, and whether to try again.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("the model endpoint {url} is not reachable ({detail})")]
    Unreachable { url: String, detail: String },
    #[error("the model endpoint did not answer within {secs} s")]
    Timeout { secs: u64 },
    #[error("{}", describe_status(*status, detail))]
    Status { status: u16, detail: String, retry_after: Option<Duration> },
    #[error("the model endpoint sent a malformed response: {0}")]
    Malformed(String),
    /// A stream that ended before any chunk (llama-cpp-python's answer to
    /// streamed tool calls); asked again without streaming.
    #[error("the model endpoint sent a malformed response: the stream ended before any reply")]
    EmptyStream,
    #[error("the model endpoint reported an error: {0}")]
    Reported(String),
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    /// The error's class, as metrics count it.
    pub fn class(&self) -> crate::metrics::ModelError {
        use crate::metrics::ModelError as Class;
        match self {
            LlmError::Unreachable { .. } => Class::Unreachable,
            LlmError::Timeout { .. } => Class::Timeout,
            LlmError::Status { status: 429, .. } => Class::RateLimited,
            LlmError::Status { status, .. } if *status >= 500 => Class::ServerStatus,
            LlmError::Status { .. } => Class::ClientStatus,
            LlmError::Malformed(_) | LlmError::EmptyStream => Class::Malformed,
            LlmError::Reported(_) => Class::Reported,
            LlmError::Cancelled => Class::None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Unreachable { .. } | LlmError::Timeout { .. } => true,
            // A server that answers an invalid request with 500 would refuse it again.
            LlmError::Status { status, detail, .. } => {
                *status == 429
                    || *status == 408
                    || (*status >= 500 && !says_invalid(detail) && !self.is_context_exceeded())
            }
            _ => false,
        }
    }

    /// Whether the server refused the prompt as longer than its context (the
    /// wordings of llama.cpp's server, LiteLLM, OpenAI and vLLM).
    pub fn is_context_exceeded(&self) -> bool {
        // Only refusals before any output (a status), so asking again repeats nothing.
        let LlmError::Status { status: 400 | 413 | 422 | 500, detail, .. } = self else { return false };
        let lower = detail.to_ascii_lowercase();
        lower.contains("context")
            && ["exceed", "too long", "maximum context", "context length"].iter().any(|w| lower.contains(w))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn describe_status(status: u16, detail: &str) -> String {
    let hint = match status {
        401 | 403 => " (check SWITCHBOARD_LLM__API_KEY)",
        404 => " (check llm.base_url and llm.model)",
        429 => " (rate limited)",
        _ => "",
    };
    if detail.is_empty() {
        format!("the model endpoint answered HTTP {status}{hint}")
    } else {
        format!("the model endpoint answered HTTP {status}{hint}: {detail}")
    }
}

/// Whether an error's text says the request itself is wrong (a validation error),
/// so that asking again cannot help.
fn says_invalid(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    ["validation error", "invalid request", "invalid_request", "is not valid", "unprocessable"]
        .iter()
        .any(|s| lower.contains(s))
}

/// The useful part of an error body, on one line: OpenAI's `error.message` (or a
/// string `error`), FastAPI's `detail` (a string, or a list of `{msg}`), a
/// top-level `message`; else a short excerpt of the body.
pub fn error_detail(body: &str) -> String {
    use serde_json::Value;
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let error = v.get("error").and_then(|e| e.get("message").and_then(Value::as_str).or_else(|| e.as_str()));
        let detail = v.get("detail").and_then(|d| match d {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => {
                let msgs: Vec<&str> = items.iter().filter_map(|i| i.get("msg").and_then(Value::as_str)).collect();
                (!msgs.is_empty()).then(|| msgs.join("; "))
            }
            _ => None,
        });
        error.map(str::to_string).or(detail).or_else(|| v.get("message").and_then(Value::as_str).map(str::to_string))
    });
    excerpt(&from_json.unwrap_or_else(|| body.trim().to_string()), 200)
}

pub fn excerpt(text: &str, max_chars: usize) -> String {
    let single_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if single_line.chars().count() <= max_chars {
        single_line
    } else {
        format!("{}…", single_line.chars().take(max_chars).collect::<String>())
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from model endpoints and ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    // Clamped before converting: a huge value would overflow a Duration.
    let secs = value?.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(secs.min(24.0 * 3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_describes() {
        let e = LlmError::Status {
            status: 503,
            detail: error_detail("{\"error\":{\"message\":\"overloaded\"}}"),
            retry_after: None,
        };
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "the model endpoint answered HTTP 503: overloaded");
        let e = LlmError::Status { status: 401, detail: String::new(), retry_after: None };
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("API_KEY"));
        assert!(!LlmError::Malformed("x".into()).is_retryable());
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(Some("1e20")), Some(Duration::from_secs(24 * 3600)));
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(excerpt(&"x".repeat(300), 10), format!("{}…", "x".repeat(10)));
        // FastAPI-style bodies (llama-cpp-python) and a bare `message`.
        assert_eq!(error_detail(r#"{"detail": "Model not found:\n x"}"#), "Model not found: x");
        assert_eq!(error_detail(r#"{"detail": [{"msg": "field required"}, {"msg": "bad"}]}"#), "field required; bad");
        assert_eq!(error_detail(r#"{"message": "busy"}"#), "busy");
        // A 500 that says the request is invalid is not asked again.
        let invalid = LlmError::Status { status: 500, detail: "1 validation error for Req".into(), retry_after: None };
        assert!(!invalid.is_retryable());
        for said in [
            "the request exceeds the available context size, try increasing it",
            "litellm.ContextWindowExceededError: context window exceeded",
            "This model's maximum context length is 8192 tokens",
        ] {
            let e = LlmError::Status { status: 400, detail: said.into(), retry_after: None };
            assert!(e.is_context_exceeded(), "{said}");
        }
        assert!(!LlmError::Status { status: 400, detail: "bad json".into(), retry_after: None }.is_context_exceeded());
    }
}
