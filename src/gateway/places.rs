//! The places among the turns allowed to run at once (`gateway.max_concurrent_turns`):
//! a turn waits in line for one before it loads anything, and gives it back once
//! its agent is done (its reply's delivery holds none). Guests' turns hold at
//! most three quarters of them, so strangers in many groups cannot keep the
//! daemon's own people waiting.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::policy::Tier;

/// The line for places, shared by every turn (cheap to clone).
#[derive(Clone)]
pub struct Places {
    all: Arc<Semaphore>,
    /// Guests take one of these first: the rest of `all` stays for others.
    guests: Arc<Semaphore>,
}

/// A place held by a running turn; given back when dropped.
pub struct Place {
    _all: OwnedSemaphorePermit,
    _guest: Option<OwnedSemaphorePermit>,
}

impl Places {
    /// As many places as there is room for in tokio's semaphore: no limit.
    pub fn unlimited() -> Places {
        Places::new(Semaphore::MAX_PERMITS)
    }

    /// `places` turns at once (at least one); guests hold at most three quarters
    /// of them (at least one, and all of them when there is only one).
    pub fn new(places: usize) -> Places {
        let places = places.max(1);
        let kept_for_others = if places == 1 { 0 } else { (places / 4).max(1) };
        Places { all: Arc::new(Semaphore::new(places)), guests: Arc::new(Semaphore::new(places - kept_for_others)) }
    }

    /// A place for a turn of someone of `tier` if one is free now, without waiting
    /// in line (for a turn that goes on whether or not it gets one).
    pub fn try_take(&self, tier: Tier) -> Option<Place> {
        let guest = match tier {
            Tier::Guest => Some(self.guests.clone().try_acquire_owned().ok()?),
            Tier::User | Tier::Admin => None,
        };
        let all = self.all.clone().try_acquire_owned().ok()?;
        Some(Place { _all: all, _guest: guest })
    }

    /// Waits in line for a place for a turn of someone of `tier`.
    pub async fn take(&self, tier: Tier) -> Place {
        // Neither semaphore is ever closed.
        let guest = match tier {
            Tier::Guest => Some(self.guests.clone().acquire_owned().await.expect("never closed")),
            Tier::User | Tier::Admin => None,
        };
        let all = self.all.clone().acquire_owned().await.expect("never closed");
        Place { _all: all, _guest: guest }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn taken(places: &Places, tier: Tier) -> Option<Place> {
        tokio::time::timeout(Duration::from_millis(50), places.take(tier)).await.ok()
    }

    #[tokio::test]
    async fn guests_leave_a_quarter_of_the_places_to_others() {
        let places = Places::new(4);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(taken(&places, Tier::Guest).await.expect("a guest's place"));
        }
        assert!(taken(&places, Tier::Guest).await.is_none(), "a fourth guest waits");
        let member = taken(&places, Tier::User).await.expect("the quarter kept for others");
        assert!(taken(&places, Tier::Admin).await.is_none(), "all four places are taken");
        drop(member);
        assert!(taken(&places, Tier::Admin).await.is_some());
        held.pop();
        assert!(taken(&places, Tier::Guest).await.is_some(), "a guest's place came back");
    }

    #[tokio::test]
    async fn a_place_taken_without_waiting_only_when_free_and_within_the_guests_share() {
        let places = Places::new(4);
        let held: Vec<Place> = (0..3).map(|_| places.try_take(Tier::Guest).expect("free")).collect();
        assert!(places.try_take(Tier::Guest).is_none(), "the guests' share is taken");
        let last = places.try_take(Tier::Admin).expect("the place kept for others");
        assert!(places.try_take(Tier::User).is_none(), "none free");
        drop((held, last));
        assert!(places.try_take(Tier::Guest).is_some());
    }

    #[tokio::test]
    async fn one_place_is_everyone_s() {
        let places = Places::new(1);
        let guest = taken(&places, Tier::Guest).await.expect("the only place");
        assert!(taken(&places, Tier::Admin).await.is_none());
        drop(guest);
        assert!(taken(&places, Tier::Admin).await.is_some());
    }
}
