//! Classifies teloxide's `RequestError`s and turns them into token-free `ChannelError`s.

use std::time::Duration;

use switchboard_channel_core::ChannelError;
use teloxide::{ApiError, RequestError};

/// Removes the bot token (and its secret half) from text that may contain a
/// request URL, such as reqwest's network errors.
#[derive(Clone)]
pub(crate) struct Redactor {
    token: String,
}

impl Redactor {
    pub fn new(token: &str) -> Redactor {
        Redactor { token: token.to_owned() }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.replace(&self.token, "<token>");
        out = out.replace(&self.token.replace(':', "%3A"), "<token>");
        if let Some((_, secret)) = self.token.split_once(':') {
            if secret.len() >= 6 {
                out = out.replace(secret, "<redacted>");
            }
        }
        out
    }

    /// A one-line description of `err` without the token.
    pub fn describe(&self, err: &RequestError) -> String {
        let text = match err {
            RequestError::Api(api) => description(api),
            RequestError::Network(e) => format!("network error: {e}"),
            RequestError::RetryAfter(s) => format!("rate limited for {} s", s.seconds()),
            RequestError::MigrateToChatId(id) => format!("the group moved to supergroup {id}"),
            RequestError::InvalidJson { source, .. } => format!("unreadable response: {source}"),
            RequestError::Io(e) => format!("I/O error: {e}"),
        };
        self.clean(&text)
    }

    /// The `ChannelError` the gateway sees for a failed `method` call.
    pub fn channel_error(&self, method: &str, err: &RequestError) -> ChannelError {
        let text = format!("telegram {method}: {}", self.describe(err));
        match classify(err) {
            Class::RateLimited(wait) => ChannelError::RateLimited(wait),
            Class::Transient => ChannelError::Transient(text),
            Class::Rejected => ChannelError::Rejected(text),
        }
    }
}

/// Telegram's description of an API error, as it sent it.
pub(crate) fn description(err: &ApiError) -> String {
    match err {
        ApiError::Unknown(text) | ApiError::CantParseEntities(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What to do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Wait this long, then the same request may succeed.
    RateLimited(Duration),
    /// Network trouble or a server error: retry with backoff.
    Transient,
    /// Retrying the same request will not help.
    Rejected,
}

pub(crate) fn classify(err: &RequestError) -> Class {
    match err {
        // Telegram sometimes sends 0; never spin.
        RequestError::RetryAfter(s) => Class::RateLimited(s.duration().max(Duration::from_secs(1))),
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => Class::Transient,
        RequestError::MigrateToChatId(_) => Class::Rejected,
        RequestError::Api(api) if is_server_error(api) => Class::Transient,
        RequestError::Api(_) => Class::Rejected,
    }
}

/// 5xx answers carry these descriptions; teloxide does not expose the status.
fn is_server_error(err: &ApiError) -> bool {
    let text = description(err);
    ["Internal Server Error", "Bad Gateway", "Service Unavailable", "Gateway Timeout"]
        .iter()
        .any(|prefix| text.starts_with(prefix))
}

pub(crate) fn is_not_modified(err: &RequestError) -> bool {
    match err {
        RequestError::Api(ApiError::MessageNotModified) => true,
        RequestError::Api(api) => description(api).contains("message is not modified"),
        _ => false,
    }
}

pub(crate) fn is_cant_parse_entities(err: &RequestError) -> bool {
    match err {
        RequestError::Api(ApiError::CantParseEntities(_)) => true,
        RequestError::Api(api) => description(api).contains("can't parse entities"),
        _ => false,
    }
}

pub(crate) fn is_invalid_token(err: &RequestError) -> bool {
    matches!(err, RequestError::Api(ApiError::InvalidToken))
}

/// A 409 from getUpdates: someone else polls, or a webhook is set.
pub(crate) fn conflict(err: &RequestError) -> Option<Conflict> {
    let RequestError::Api(api) = err else { return None };
    match api {
        ApiError::TerminatedByOtherGetUpdates => return Some(Conflict::OtherPoller),
        ApiError::CantGetUpdates => return Some(Conflict::Webhook),
        _ => {}
    }
    let text = description(api);
    if !text.starts_with("Conflict") {
        return None;
    }
    Some(if text.contains("webhook") { Conflict::Webhook } else { Conflict::OtherPoller })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    OtherPoller,
    Webhook,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_and_its_secret_half_are_redacted() {
        let r = Redactor::new("123456:SECRET-TOKEN");
        assert_eq!(
            r.clean("error sending request for url (http://x/bot123456:SECRET-TOKEN/SendMessage)"),
            "error sending request for url (http://x/bot<token>/SendMessage)"
        );
        assert_eq!(r.clean("http://x/bot123456%3ASECRET-TOKEN/GetMe"), "http://x/bot<token>/GetMe");
        assert_eq!(r.clean("leaked SECRET-TOKEN"), "leaked <redacted>");
    }

    #[test]
    fn conflicts_are_told_apart() {
        let poller = RequestError::Api(ApiError::Unknown("Conflict: terminated by other getUpdates request".into()));
        assert_eq!(conflict(&poller), Some(Conflict::OtherPoller));
        let hook = RequestError::Api(ApiError::Unknown(
            "Conflict: can't use getUpdates method while webhook is active".into(),
        ));
        assert_eq!(conflict(&hook), Some(Conflict::Webhook));
        assert_eq!(conflict(&RequestError::Api(ApiError::Unknown("Bad Request: x".into()))), None);
    }

    #[test]
    fn server_errors_are_transient_and_bad_requests_are_not() {
        let server = RequestError::Api(ApiError::Unknown("Internal Server Error".into()));
        assert_eq!(classify(&server), Class::Transient);
        let bad = RequestError::Api(ApiError::Unknown("Bad Request: chat not found".into()));
        assert_eq!(classify(&bad), Class::Rejected);
        assert!(is_not_modified(&RequestError::Api(ApiError::MessageNotModified)));
    }
}
