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
    next: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Past entries are dropped when the map grows beyond this.
const TIDY_ABOVE: usize = 1024;

impl Pacer {
    pub fn new(registry: Registry) -> Pacer {
        Pacer { registry, next: Arc::default() }
    }

    /// The chat's channel's interval.
    pub fn interval(&self, chat: &ChatKey) -> Duration {
        self.registry.get(&chat.channel).map_or(Duration::from_secs(1), |s| s.pace)
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the chat's next slot has come (without taking it).
    pub fn due(&self, chat: &ChatKey) -> bool {
        self.slots().get(&chat.chat_id()).is_none_or(|at| Instant::now() >= *at)
    }

    /// Takes the chat's slot if it has come.
    pub fn take(&self, chat: &ChatKey) -> bool {
        let interval = self.interval(chat);
        let mut slots = self.slots();
        let now = Instant::now();
        if slots.len() > TIDY_ABOVE {
            slots.retain(|_, at| *at > now);
        }
        match slots.get(&chat.chat_id()) {
            Some(at) if now < *at => false,
            _ => {
                slots.insert(chat.chat_id(), now + interval);
                true
            }
        }
    }

    /// Waits for the chat's slot and takes it.
    pub async fn wait(&self, chat: &ChatKey) {
        loop {
            let at = self.slots().get(&chat.chat_id()).copied();
            match at {
                Some(at) if Instant::now() < at => tokio::time::sleep_until(at).await,
                _ if self.take(chat) => return,
                _ => {}
            }
        }
    }

    /// The platform said "retry after": nothing more to this chat until then.
    pub fn hold(&self, chat: &ChatKey, wait: Duration) {
        self.slots().insert(chat.chat_id(), Instant::now() + wait);
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
}
