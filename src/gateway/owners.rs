//! Which chats this process answers. Alone on its store, every chat. As one of
//! several replicas, a chat's events, turns and replies belong to the replica
//! holding the chat's lease (`chat:<chat id>`): it takes the lease before it
//! judges an event, keeps it while anything of the chat is unanswered or unsent
//! here, stores replies only under it (a fenced write) and lets it go when idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::leases::Leases;
use crate::store::Lease;

#[derive(Clone, Default)]
pub struct Owners {
    /// `None`: alone on the store, every chat is this process's.
    leases: Option<Leases>,
    /// Chats with work running here now (an event being judged), and how much.
    using: Arc<Mutex<HashMap<String, usize>>>,
}

/// A chat in use here: its lease is not let go of while this lives.
pub struct Using {
    using: Arc<Mutex<HashMap<String, usize>>>,
    chat: String,
}

impl Drop for Using {
    fn drop(&mut self) {
        let mut using = self.using.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = using.get_mut(&self.chat) {
            *count -= 1;
            if *count == 0 {
                using.remove(&self.chat);
            }
        }
    }
}

/// A conversation's turn running here (with replicas, under its lease
/// `turn:<conversation>`). [`TurnHold::release`] lets it go; dropped without
/// (a panic), it is let go of in the background.
pub struct TurnHold {
    leases: Option<Leases>,
    name: String,
}

impl TurnHold {
    /// The lease the turn's transcript entries are stored under (`None` alone).
    pub fn fence(&self) -> Option<Lease> {
        self.leases.as_ref().and_then(|leases| leases.fence(&self.name))
    }

    /// Lets the conversation go, and tells the other replicas.
    pub async fn release(mut self) {
        if let Some(leases) = self.leases.take() {
            leases.release(&self.name).await;
            leases.announce().await;
        }
    }
}

impl Drop for TurnHold {
    fn drop(&mut self) {
        if let Some(leases) = self.leases.take() {
            let name = std::mem::take(&mut self.name);
            tokio::spawn(async move {
                leases.release(&name).await;
                leases.announce().await;
            });
        }
    }
}

/// The chat is another replica's now: nothing of it may be stored or sent here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

fn lease_name(chat: &str) -> String {
    format!("chat:{chat}")
}

impl Owners {
    /// Every chat is this process's.
    pub fn alone() -> Owners {
        Owners::default()
    }

    /// Chats are shared with other replicas through `leases`.
    pub fn replicas(leases: Leases) -> Owners {
        Owners { leases: Some(leases), using: Arc::default() }
    }

    /// Whether other replicas share the chats (and may have answered an event
    /// this one took before it held the chat).
    pub fn shared(&self) -> bool {
        self.leases.is_some()
    }

    fn using(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.using.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, chat: &str) -> Using {
        *self.using().entry(chat.to_string()).or_default() += 1;
        Using { using: self.using.clone(), chat: chat.to_string() }
    }

    /// Takes `chat` for this process (its lease, when shared), or `None` when
    /// another replica holds it (or the store cannot say): then that replica, or
    /// whoever takes the chat next, answers its events.
    pub async fn take(&self, chat: &str) -> Option<Using> {
        let Some(leases) = &self.leases else { return Some(self.enter(chat)) };
        let name = lease_name(chat);
        let _lock = leases.lock(&name).await;
        // Enough time left to judge an event: otherwise claimed again (the same
        // holder keeps its fence).
        if leases.holds_for(&name, leases.settings().renew_every) {
            return Some(self.enter(chat));
        }
        match leases.claim_locked(&name).await {
            Ok(true) => Some(self.enter(chat)),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a chat's lease; its events wait in the journal");
                None
            }
        }
    }

    /// Waits until this process may run a turn of `conversation`: at once when
    /// alone; with replicas, once no other replica runs one. A chat's lease
    /// already keeps its conversation's turns on one replica; this keeps them
    /// there when several chats share a conversation (`shared_conversation`,
    /// routes).
    /// `None` once `stopping` says so, before or right after the claim.
    pub async fn hold_turn(&self, conversation: &str, stopping: impl Fn() -> bool) -> Option<TurnHold> {
        let Some(leases) = &self.leases else { return Some(TurnHold { leases: None, name: String::new() }) };
        let name = format!("turn:{conversation}");
        let mut waker = leases.waker();
        while !stopping() {
            match leases.claim(&name).await {
                Ok(true) => {
                    let hold = TurnHold { leases: Some(leases.clone()), name };
                    if stopping() {
                        hold.release().await;
                        return None;
                    }
                    return Some(hold);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim a conversation's turn; trying again"),
            }
            waker.wait().await;
        }
        None
    }

    /// Whether `chat` is this process's now (for sending).
    pub fn holds(&self, chat: &str) -> bool {
        self.leases.as_ref().is_none_or(|leases| leases.holds(&lease_name(chat)))
    }

    /// What a write of `chat`'s reply must present: nothing when alone, the
    /// chat's lease when shared; [`NotOwner`] when it is not held here.
    pub fn fence(&self, chat: &str) -> Result<Option<Lease>, NotOwner> {
        match &self.leases {
            None => Ok(None),
            Some(leases) => leases.fence(&lease_name(chat)).map(Some).ok_or(NotOwner),
        }
    }

    /// Lets go of every chat held here with nothing of it in use, unanswered or
    /// unsent (`busy`), so another replica that receives its next event takes it
    /// at once (told so, when any was let go of).
    pub async fn release_idle(&self, busy: impl Fn(&str) -> bool) {
        let Some(leases) = &self.leases else { return };
        let mut released = false;
        for name in leases.names("chat:") {
            let chat = &name["chat:".len()..];
            let _lock = leases.lock(&name).await;
            if !self.using().contains_key(chat) && !busy(chat) {
                leases.release_locked(&name).await;
                released = true;
            }
        }
        if released {
            leases.announce().await;
        }
    }

    /// Tells the replica holding a chat that an event of it waits in the journal.
    pub async fn hand_over(&self) {
        if let Some(leases) = &self.leases {
            leases.announce().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::ReplicaSettings;
    use crate::store::KvBatch;

    fn settings(ttl: Duration) -> ReplicaSettings {
        ReplicaSettings { enabled: true, lease_ttl: ttl, renew_every: ttl / 4, poll_every: Duration::from_millis(50) }
    }

    /// Two replicas on one store: a chat is one's at a time; it passes on only
    /// when its holder has nothing of it in use or unanswered.
    #[tokio::test]
    async fn a_chat_is_one_replicas_until_it_is_idle_there() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let ttl = Duration::from_secs(60);
            let one = Owners::replicas(Leases::new(backend.store.clone(), settings(ttl)));
            let two = Owners::replicas(Leases::new(backend.store.clone(), settings(ttl)));
            let using = one.take("t:b:1").await.expect("a free chat is taken");
            assert!(two.take("t:b:1").await.is_none(), "held by the other replica");
            assert!(one.holds("t:b:1") && !two.holds("t:b:1"));
            assert!(one.fence("t:b:1").is_ok());
            assert_eq!(two.fence("t:b:1"), Err(NotOwner));
            assert!(two.take("t:b:2").await.is_some(), "another chat is free");

            one.release_idle(|_| false).await;
            assert!(two.take("t:b:1").await.is_none(), "in use: kept");
            drop(using);
            one.release_idle(|chat| chat == "t:b:1").await;
            assert!(two.take("t:b:1").await.is_none(), "unanswered there: kept");
            one.release_idle(|_| false).await;
            assert!(!one.holds("t:b:1"));
            assert!(two.take("t:b:1").await.is_some(), "idle: let go at once, not after the lease's length");
            assert!(one.take("t:b:1").await.is_none());
        }
    }

    /// A conversation's turns, one replica at a time: a turn that ends lets go
    /// before the next one here claims again (so a release never lands on the
    /// next turn's claim), and a replica waiting for it gives up when stopping.
    #[tokio::test]
    async fn a_conversation_runs_one_turn_at_a_time_across_replicas() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let ttl = Duration::from_secs(60);
            let one = Owners::replicas(Leases::new(backend.store.clone(), settings(ttl)));
            let two = Owners::replicas(Leases::new(backend.store.clone(), settings(ttl)));
            let first = one.hold_turn("conv-1", || false).await.expect("free");
            first.release().await;
            let _second = one.hold_turn("conv-1", || false).await.expect("free again");
            // Let any release still on its way land.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let stop_at = std::time::Instant::now() + Duration::from_millis(300);
            let waited = two.hold_turn("conv-1", || std::time::Instant::now() > stop_at).await;
            assert!(waited.is_none(), "held by the first replica's second turn; given up when stopping");
            assert!(two.hold_turn("conv-2", || false).await.is_some(), "another conversation is free");
        }
    }

    /// A replica that lost a chat (its lease lapsed and another took it) can
    /// store nothing under the old lease, and no longer counts as its holder.
    #[tokio::test]
    async fn a_lapsed_holder_cannot_commit() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            // Long enough for the first write under a loaded test run's flushes.
            let short = Duration::from_secs(1);
            let one = Owners::replicas(Leases::new(backend.store.clone(), settings(short)));
            let two = Owners::replicas(Leases::new(backend.store.clone(), settings(Duration::from_secs(60))));
            drop(one.take("t:b:1").await.expect("taken"));
            let stale = one.fence("t:b:1").unwrap().expect("a lease to present");
            tokio::time::sleep(short + Duration::from_millis(100)).await;
            assert!(!one.holds("t:b:1"), "past its deadline by this process's clock");
            assert_eq!(one.fence("t:b:1"), Err(NotOwner));
            assert!(two.take("t:b:1").await.is_some(), "lapsed: the other replica takes it");
            let mut batch = KvBatch::new();
            batch.put("outbox", "1", b"reply".to_vec());
            let store = backend.store.clone();
            let old = stale.clone();
            let written = crate::store::blocking(&store, move |s| s.kv_write_fenced(&old, &batch)).await.unwrap();
            assert!(!written, "the old holder's reply is refused");
            assert_eq!(backend.store.kv_get("outbox", "1").unwrap(), None);
            // Nor can it record a part of a reply as sent.
            use super::super::outbox::{Outbound, Outbox, OutboxItem};
            let chat = switchboard_channel_core::ChatKey {
                channel: "t".into(),
                account: "b".into(),
                chat: "1".into(),
                thread: None,
            };
            let item = OutboxItem {
                seq: 9,
                chat,
                message: Outbound::default(),
                stream_message: None,
                stream_shown: None,
                delivered_parts: 1,
                created_at: 0,
                answers: Vec::new(),
                reply_entry: None,
            };
            let outbox = Outbox::new(store.clone());
            assert!(!outbox.mark(&item, Some(stale.clone())).await.unwrap(), "the old holder's mark is refused");
            assert!(outbox.get(9).await.unwrap().is_none());
            assert!(outbox.mark(&item, None).await.unwrap(), "unfenced (alone): recorded");
            // Nor can it note the message it streamed into: the new holder may
            // mark the event answered meanwhile, and a note read before that
            // marking and written after it would take the marking back.
            let journal = super::super::journal::Journal::new(store.clone());
            journal.record(&super::super::journal::tests::event("e1")).await.unwrap();
            let sent = || switchboard_channel_core::SentRef { message_id: "77".into() };
            let noted = journal.set_stream_message("e1", sent(), "old".into(), Some(stale)).await.unwrap();
            assert!(!noted, "the old holder's note is refused");
            assert!(journal.get("e1").await.unwrap().unwrap().stream_message.is_none());
            let held = two.fence("t:b:1").unwrap();
            assert!(
                journal.set_stream_message("e1", sent(), "new".into(), held).await.unwrap(),
                "the holder's is kept"
            );
        }
    }

    /// A turn's transcript entries are stored only under its conversation's
    /// lease: the replica that lost it adds nothing, the new holder does.
    #[tokio::test]
    async fn a_lapsed_holder_adds_nothing_to_the_transcript() {
        use crate::store::{text_content, Entry, MessageBody};
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            // Long enough for the first write under a loaded test run's flushes.
            let short = Duration::from_secs(1);
            let one = Owners::replicas(Leases::new(backend.store.clone(), settings(short)));
            let two = Owners::replicas(Leases::new(backend.store.clone(), settings(Duration::from_secs(60))));
            let first = one.hold_turn("conv-1", || false).await.unwrap();
            let stale = first.fence().expect("a lease to present");
            let entry = |text: &str| Entry::new(None, MessageBody::User { content: text_content(text.to_string()) });
            let store = backend.store.clone();
            let (kept, refused, later) = (entry("while held"), entry("after losing it"), entry("the new holder"));
            let expected = vec![kept.id().to_string(), later.id().to_string()];
            let (lease, said) = (stale.clone(), kept);
            let appended = crate::store::blocking(&store, move |s| s.append_entry_fenced(&lease, "conv-1", &said));
            assert!(appended.await.unwrap().is_some(), "held: stored");
            tokio::time::sleep(short + Duration::from_millis(100)).await;
            let second = two.hold_turn("conv-1", || false).await.expect("lapsed: the other replica takes it");
            let (lease, said) = (stale, refused);
            let appended = crate::store::blocking(&store, move |s| s.append_entry_fenced(&lease, "conv-1", &said));
            assert!(appended.await.unwrap().is_none(), "the old holder's entry is refused");
            let (lease, said) = (second.fence().unwrap(), later);
            let appended = crate::store::blocking(&store, move |s| s.append_entry_fenced(&lease, "conv-1", &said));
            assert!(appended.await.unwrap().is_some());
            let stored: Vec<String> =
                backend.store.entries("conv-1").unwrap().into_iter().map(|(_, e)| e.id().to_string()).collect();
            assert_eq!(stored, expected, "the held one and the new holder's, not the lost one's");
            drop(first);
        }
    }
}
