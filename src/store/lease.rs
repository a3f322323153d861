//! Leases: one holder at a time for a named thing (a conversation's turn, the
//! Telegram poller), for a bounded time, with a fencing token that grows with
//! every new holder, so that a holder that lost its lease cannot commit.

use std::time::Duration;

/// A lease as its holder knows it.
///
/// `holder` must name one claimant (a replica's own id): a claim by the current
/// holder renews the lease with the same fence, so two tasks sharing a holder id
/// are not kept apart. `expires_at_ms` is in the store's clock (PostgreSQL's, for
/// processes on several machines), so a holder schedules its renewals by its own
/// monotonic clock, well inside the lease's length, never by comparing clocks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// What is held (`turn:<conversation>`, `poller:telegram`).
    pub name: String,
    /// Who holds it (a process's own id).
    pub holder: String,
    /// Larger for every new holder of this name; kept while the holder renews.
    pub fence: u64,
    /// When it lapses unless renewed, in the store's clock (ms since the epoch).
    pub expires_at_ms: u64,
}

/// What a store answers to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Held by the claimant now (newly, or still: then with the same fence).
    Held(Lease),
    /// Someone else holds it until then.
    Taken { holder: String, until_ms: u64 },
}

/// The longest lease: about 35,000 years, far from overflowing any clock sum.
const MAX_TTL_MS: u64 = 1 << 50;

/// A lease's length in the store's milliseconds (capped at [`MAX_TTL_MS`]).
pub fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().min(MAX_TTL_MS as u128) as u64
}
