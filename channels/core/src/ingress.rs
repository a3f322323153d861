//! Whether a channel is receiving: the time of its last ingress progress (a
//! long poll answered, a socket frame or heartbeat acknowledgement, a webhook
//! listener bound) and how old that may get before the channel counts as deaf.
//! Readiness (`/readyz`), the systemd watchdog and `/status` all read this.

use std::time::{Duration, Instant};

/// How a channel's receiving stands, as its adapter reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Not receiving: not started, stopped, or given up.
    Down,
    /// Serving an endpoint the platform posts to; receiving while it is bound.
    Listening,
    /// Another replica receives for this account (an exclusive ingress); this
    /// one takes over when that one stops. Healthy.
    Standby,
    /// Receiving over a poll or a socket, which must keep making progress.
    Progressing {
        /// The last progress (`None`: none since the start).
        last: Option<Instant>,
        /// Progress older than this means the channel has gone deaf.
        within: Duration,
    },
}

impl Ingress {
    /// Whether the channel receives now: listening, or progress within its bound.
    pub fn live(&self) -> bool {
        match self {
            Ingress::Down => false,
            Ingress::Listening | Ingress::Standby => true,
            Ingress::Progressing { last, within } => last.is_some_and(|at| at.elapsed() <= *within),
        }
    }

    /// How long ago the last progress was (`None`: never, or not a progressing kind).
    pub fn age(&self) -> Option<Duration> {
        match self {
            Ingress::Progressing { last: Some(at), .. } => Some(at.elapsed()),
            _ => None,
        }
    }

    /// Why the channel is not live, for `/status` and logs; `None` when it is.
    pub fn problem(&self) -> Option<String> {
        if self.live() {
            return None;
        }
        Some(match self {
            Ingress::Down => "not receiving".into(),
            Ingress::Progressing { last: None, .. } => "not receiving yet".into(),
            Ingress::Progressing { last: Some(at), .. } => {
                format!("not receiving: nothing from the platform for {} s", at.elapsed().as_secs())
            }
            Ingress::Listening | Ingress::Standby => unreachable!("a listening or standby channel is live"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_only_within_its_bound() {
        let within = Duration::from_secs(10);
        assert!(!Ingress::Down.live());
        assert!(Ingress::Listening.live());
        assert!(Ingress::Standby.live(), "another replica receives: nothing wrong here");
        assert!(!Ingress::Progressing { last: None, within }.live());
        assert!(Ingress::Progressing { last: Some(Instant::now()), within }.live());
        let old = Instant::now().checked_sub(Duration::from_secs(11));
        if let Some(old) = old {
            let stale = Ingress::Progressing { last: Some(old), within };
            assert!(!stale.live());
            assert!(stale.problem().unwrap().contains("for 11 s"));
        }
        assert_eq!(Ingress::Listening.problem(), None);
    }
}
