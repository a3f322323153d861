//! How many messages a guest may send: a per-sender count over one-minute
//! windows. Past the limit the first message of a window is answered with a
//! notice, the rest of the window is turned away quietly (the notice said so).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

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
    windows: Arc<Mutex<Windows>>,
}

/// The windows of the guests heard from in the last minute or two: ended ones
/// are swept away once a window's length after the last sweep, so what is kept
/// follows the recent load, not how many guests were ever heard.
#[derive(Default)]
struct Windows {
    by_sender: HashMap<String, Window>,
    swept: Option<Instant>,
}

impl GuestLimit {
    /// Counts a message of `sender` (a channel-scoped id) against `per_minute`.
    pub fn check(&self, sender: &str, per_minute: u32) -> Flood {
        self.check_at(sender, per_minute, Instant::now())
    }

    fn check_at(&self, sender: &str, per_minute: u32, now: Instant) -> Flood {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.swept.is_none_or(|at| now.duration_since(at) >= WINDOW) {
            windows.by_sender.retain(|_, w| now.duration_since(w.started) < WINDOW);
            windows.by_sender.shrink_to_fit();
            windows.swept = Some(now);
        }
        let window = windows.by_sender.entry(sender.to_string()).or_insert(Window { started: now, count: 0 });
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

    #[test]
    fn guests_heard_from_long_ago_are_forgotten() {
        let limit = GuestLimit::default();
        let t0 = Instant::now();
        for n in 0..1000 {
            limit.check_at(&format!("tg:{n}"), 3, t0);
        }
        limit.check_at("tg:late", 3, t0 + WINDOW / 2);
        assert_eq!(limit.windows.lock().unwrap().by_sender.len(), 1001, "all within the minute");
        limit.check_at("tg:new", 3, t0 + WINDOW * 2);
        let kept: Vec<String> = limit.windows.lock().unwrap().by_sender.keys().cloned().collect();
        assert_eq!(kept, ["tg:new"], "ended windows swept away");
    }
}
