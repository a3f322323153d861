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
    #[error("the model endpoint reported an error: {0}")]
    Reported(String),
    #[error("cancelled")]
    Cancelled,
}

impl LlmError {
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Unreachable { .. } | LlmError::Timeout { .. } => true,
            LlmError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            _ => false,
        }
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

/// The useful part of an error body: OpenAI's `error.message`, else a short excerpt.
pub fn error_detail(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let e = v.get("error")?;
        e.get("message").and_then(|m| m.as_str()).or_else(|| e.as_str()).map(str::to_string)
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
    }
}
