//! How many messages a guest may send: a per-sender count over one-minute
//! windows. Past the limit the first message of a window is answered with a
//! notice, the rest of the window is turned away quietly (the notice said so).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Windows kept before old ones are swept away (memory stays bounded).
const SWEEP_AT: usize = 4096;

/// What to do with a guest's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Within the limit.
    Pass,
    /// The first one over the limit in this window: say why it is turned away.
    Notify,
    /// Over the limit, already told.
    Drop,
}

struct Window {
    started: Instant,
    count: u32,
}

/// Every guest's window; cheap to clone.
#[derive(Clone, Default)]
pub struct GuestLimit {
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

impl GuestLimit {
    /// Counts a message of `sender` (a channel-scoped id) against `per_minute`.
    pub fn check(&self, sender: &str, per_minute: u32) -> Flood {
        self.check_at(sender, per_minute, Instant::now())
    }

    fn check_at(&self, sender: &str, per_minute: u32, now: Instant) -> Flood {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let window = windows.entry(sender.to_string()).or_insert(Window { started: now, count: 0 });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window { started: now, count: 0 };
        }
        window.count += 1;
        match window.count.checked_sub(per_minute) {
            None | Some(0) => Flood::Pass,
            Some(1) => Flood::Notify,
            Some(_) => Flood::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_over_the_limit_is_told_once_then_turned_away_until_the_window_ends() {
        let limit = GuestLimit::default();
        let t0 = Instant::now();
        let verdicts: Vec<Flood> = (0..5).map(|_| limit.check_at("tg:1", 3, t0)).collect();
        assert_eq!(verdicts, [Flood::Pass, Flood::Pass, Flood::Pass, Flood::Notify, Flood::Drop]);
        assert_eq!(limit.check_at("tg:2", 3, t0), Flood::Pass, "others are counted apart");
        assert_eq!(limit.check_at("tg:1", 3, t0 + WINDOW), Flood::Pass, "a new window");
    }
}
