//! The one retry budget for everything the gateway sends. Adapters make one
//! attempt per call and classify its failure; only this decides about another.
//!
//! One delivery round tries a call at most [`ATTEMPTS`] times: after a rate limit
//! it waits as the platform asked (at most [`MAX_RATE_LIMIT_WAIT`]), after a
//! transient failure it backs off from [`FIRST_BACKOFF`], doubling up to
//! [`MAX_BACKOFF`]. A rejection ends the round at once. A reply still not
//! delivered after a round stays in the outbox, whose retry loop starts a new
//! round every [`RETRY_EVERY`] until the reply is [`GIVE_UP_AFTER`] old.

use std::future::Future;
use std::time::Duration;

use switchboard_channel_core::ChannelError;

/// Attempts of one call in one delivery round.
pub const ATTEMPTS: u32 = 5;
/// The first wait after a transient failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait after a transient failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest wait a platform's "retry after" is honoured with in a round.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// How often undelivered replies get a new round.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);
/// A reply older than this is dropped (logged) instead of retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Runs `call` to `channel` within one round's budget; the last result if none
/// succeeded. Each rate limit is counted in the metrics.
pub async fn round<T, F, Fut>(channel: &str, mut call: F) -> Result<T, ChannelError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ChannelError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let result = call().await;
        let wait = match &result {
            Err(ChannelError::RateLimited(wait)) => {
                crate::metrics::global().rate_limited(channel);
                (*wait).min(MAX_RATE_LIMIT_WAIT)
            }
            Err(ChannelError::Transient(_)) => {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            _ => return result,
        };
        if attempt == ATTEMPTS {
            return result;
        }
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_and_stop_at_the_budget() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = round("fake", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ChannelError::Transient("down".into())) }
        })
        .await;
        assert!(matches!(result, Err(ChannelError::Transient(_))));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
        // 250 + 500 + 1000 + 2000 ms between five calls.
        assert_eq!(started.elapsed(), Duration::from_millis(3750));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_is_waited_out_and_a_rejection_ends_the_round() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result = round("fake", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(ChannelError::RateLimited(Duration::from_secs(3))),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(result, Ok(1));
        assert_eq!(started.elapsed(), Duration::from_secs(3));

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = round("fake", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ChannelError::Rejected("forbidden".into())) }
        })
        .await;
        assert!(matches!(result, Err(ChannelError::Rejected(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a rejection is never retried");
    }
}
