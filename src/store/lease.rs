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

/// Whether `stored` is `mine`, unlapsed at `now`.
pub fn still_held(stored: &Lease, mine: &Lease, now: u64) -> bool {
    stored.holder == mine.holder && stored.fence == mine.fence && stored.expires_at_ms >= now
}

/// For a store that decides leases itself (one process): what `holder`'s claim
/// of `name` for `ttl_ms` writes (`None`: nothing) and answers, given the
/// stored lease `current` at `now`.
pub fn claim(current: Option<Lease>, name: &str, holder: &str, ttl_ms: u64, now: u64) -> (Option<Lease>, Claim) {
    match current {
        Some(c) if c.holder != holder && c.expires_at_ms >= now => {
            (None, Claim::Taken { holder: c.holder, until_ms: c.expires_at_ms })
        }
        current => {
            // Ours still: renewed with its fence. Lapsed or never held: a new fence.
            let fence = match &current {
                Some(c) if c.holder == holder && c.expires_at_ms >= now => c.fence,
                Some(c) => c.fence + 1,
                None => 1,
            };
            let lease =
                Lease { name: name.into(), holder: holder.into(), fence, expires_at_ms: now.saturating_add(ttl_ms) };
            (Some(lease.clone()), Claim::Held(lease))
        }
    }
}

/// As [`claim`], for a renewal of `lease`.
pub fn renew(current: Option<Lease>, lease: &Lease, ttl_ms: u64, now: u64) -> (Option<Lease>, Option<Lease>) {
    match current {
        Some(c) if still_held(&c, lease, now) => {
            let renewed = Lease { expires_at_ms: now.saturating_add(ttl_ms), ..c };
            (Some(renewed.clone()), Some(renewed))
        }
        _ => (None, None),
    }
}

/// As [`claim`], for letting `lease` go (it lapses at once, its fence kept).
pub fn release(current: Option<Lease>, lease: &Lease, now: u64) -> Option<Lease> {
    match current {
        Some(c) if still_held(&c, lease, now) => Some(Lease { expires_at_ms: 0, ..c }),
        _ => None,
    }
}
