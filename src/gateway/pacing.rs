//! Pacing per chat: at most one streaming edit (or paced send) per interval in a
//! whole chat (its threads share the platform's limit), and nothing while the
//! platform has asked us to wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use switchboard_channel_core::ChatKey;

use super::registry::Registry;

/// The next allowed moment per chat; cheap to clone.
#[derive(Clone)]
pub struct Pacer {
    registry: Registry,
    next: Arc<Mutex<Slots>>,
}

/// Past entries are dropped when the map grows beyond this (or beyond twice
/// what the last tidying left, when more chats than this are paced at once).
const TIDY_ABOVE: usize = 1024;

/// The next allowed moment per chat (`ChatKey::chat_id`).
struct Slots {
    at: HashMap<String, Instant>,
    /// Tidied when it holds more than this: at least [`TIDY_ABOVE`], and twice
    /// what the last tidying kept, so a burst of many chats each paced now is
    /// not looked through whole on every slot taken.
    tidy_above: usize,
    /// How many times it was tidied (what the tests count).
    tidied: usize,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots { at: HashMap::new(), tidy_above: TIDY_ABOVE, tidied: 0 }
    }
}

impl Slots {
    /// Sets a chat's next slot, first dropping past ones if there are many.
    fn set(&mut self, chat: String, at: Instant, now: Instant) {
        if self.at.len() > self.tidy_above {
            self.at.retain(|_, at| *at > now);
            self.tidy_above = TIDY_ABOVE.max(self.at.len() * 2);
            self.tidied += 1;
        }
        self.at.insert(chat, at);
    }
}

impl Pacer {
    pub fn new(registry: Registry) -> Pacer {
        Pacer { registry, next: Arc::default() }
    }

    /// The chat's channel's interval.
    pub fn interval(&self, chat: &ChatKey) -> Duration {
        self.registry.get(&chat.channel).map_or(Duration::from_secs(1), |s| s.pace)
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the chat's next slot has come (without taking it).
    pub fn due(&self, chat: &ChatKey) -> bool {
        self.slots().at.get(&chat.chat_id()).is_none_or(|at| Instant::now() >= *at)
    }

    /// Takes the chat's slot if it has come.
    pub fn take(&self, chat: &ChatKey) -> bool {
        let interval = self.interval(chat);
        let id = chat.chat_id();
        let mut slots = self.slots();
        let now = Instant::now();
        match slots.at.get(&id) {
            Some(at) if now < *at => false,
            _ => {
                slots.set(id, now + interval, now);
                true
            }
        }
    }

    /// Waits for the chat's slot and takes it.
    pub async fn wait(&self, chat: &ChatKey) {
        loop {
            let at = self.slots().at.get(&chat.chat_id()).copied();
            match at {
                Some(at) if Instant::now() < at => tokio::time::sleep_until(at).await,
                _ if self.take(chat) => return,
                _ => {}
            }
        }
    }

    /// The platform said "retry after": nothing more to this chat until then.
    pub fn hold(&self, chat: &ChatKey, wait: Duration) {
        let now = Instant::now();
        self.slots().set(chat.chat_id(), now + wait, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(id: &str, thread: Option<&str>) -> ChatKey {
        ChatKey { channel: "none".into(), account: "a".into(), chat: id.into(), thread: thread.map(str::to_string) }
    }

    #[tokio::test(start_paused = true)]
    async fn one_slot_per_interval_per_whole_chat() {
        let pacer = Pacer::new(Registry::default());
        assert!(pacer.take(&chat("1", None)));
        assert!(!pacer.take(&chat("1", Some("topic"))), "a topic shares its chat's pace");
        assert!(pacer.take(&chat("2", None)), "other chats are independent");
        let started = Instant::now();
        pacer.wait(&chat("1", None)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1), "an unknown channel is paced at one per second");
        pacer.hold(&chat("2", None), Duration::from_secs(30));
        assert!(!pacer.due(&chat("2", None)));
    }

    /// Many more chats than [`TIDY_ABOVE`] paced within one interval (a burst
    /// to thousands of chats): the slots are looked through a few times as
    /// they grow, not on every slot taken; and once their slots have passed,
    /// they are dropped at the next tidying (so at most about twice the most
    /// chats paced at once are kept).
    #[tokio::test(start_paused = true)]
    async fn a_burst_to_many_chats_is_not_looked_through_on_every_slot() {
        let pacer = Pacer::new(Registry::default());
        let chats = 10 * TIDY_ABOVE;
        for n in 0..chats {
            assert!(pacer.take(&chat(&n.to_string(), None)));
        }
        let tidied = pacer.slots().tidied;
        assert!(tidied <= 4, "tidied {tidied} times for {chats} chats");
        tokio::time::advance(Duration::from_secs(2)).await;
        let mut later = 0;
        while pacer.slots().tidied == tidied {
            assert!(later < chats, "no tidying after {later} more chats");
            assert!(pacer.take(&chat(&format!("later-{later}"), None)));
            later += 1;
        }
        let slots = pacer.slots();
        assert_eq!(slots.at.len(), later, "only the later chats' slots are kept");
        assert_eq!(slots.tidy_above, TIDY_ABOVE.max(2 * (later - 1)));
    }
}
