//! Delivering replies through the outbox. A reply is stored before anything is
//! sent, then the event it answers is marked answered, so a crash loses nothing;
//! an event replayed after a crash between those two writes finds its stored
//! reply and stores no second one.
//!
//! One owner per item for its whole life: whoever stores an item (a turn, a
//! command, a notice) claims it before it exists in the store and keeps the claim
//! until it has sent it, so the retry loop and recovery, which claim what they
//! find, never touch it meanwhile; and every sender re-reads the stored copy under
//! its claim, so nothing is sent from a stale copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchboard_channel_core::markdown::{parse, to_plain};
use switchboard_channel_core::split::split;
use switchboard_channel_core::{Channel, ChannelError, ChatKey};

use super::journal::Journal;
use super::names::Names;
use super::outbox::{Outbound, Outbox, OutboxItem, PromptPart, Stored, Streamed};
use super::owners::Owners;
use super::pacing::Pacer;
use super::prompt_records::{Copy, PromptRecords};
use super::registry::Registry;
use super::retry;
use crate::metrics::DeliveryOutcome;
use crate::policy::approvals::outcome_text;
use crate::store::now_ms;
use crate::store::ApprovalState;

#[derive(Clone)]
pub struct Delivery {
    outbox: Outbox,
    journal: Journal,
    registry: Registry,
    pacer: Pacer,
    /// Where approval prompts the outbox showed are recorded.
    records: PromptRecords,
    /// Who decided, by name, for a prompt resolved as soon as it is shown.
    names: Names,
    /// Which chats this process answers (with replicas, only those whose lease
    /// it holds).
    owners: Owners,
    /// Items someone owns right now, with their chats.
    busy: Busy,
}

type Busy = Arc<Mutex<HashMap<u64, String>>>;

/// An item's claim: its holder alone sends it; released when dropped, sent or not.
struct Claim {
    busy: Busy,
    seq: u64,
}

impl Claim {
    fn take(busy: &Busy, seq: u64, chat: &ChatKey) -> Option<Claim> {
        let mut claimed = busy.lock().unwrap_or_else(|p| p.into_inner());
        if claimed.contains_key(&seq) {
            return None;
        }
        claimed.insert(seq, chat.id());
        Some(Claim { busy: busy.clone(), seq })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.seq);
    }
}

impl Delivery {
    pub fn new(
        outbox: Outbox,
        journal: Journal,
        registry: Registry,
        pacer: Pacer,
        records: PromptRecords,
        names: Names,
        owners: Owners,
    ) -> Delivery {
        Delivery { outbox, journal, registry, pacer, records, names, owners, busy: Arc::default() }
    }

    /// Whether this process serves `channel` (it is configured here).
    pub fn serves(&self, channel: &str) -> bool {
        self.registry.channel(channel).is_some()
    }

    /// Whether a reply of `chat` is being sent here.
    pub fn has_work(&self, chat: &str) -> bool {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).values().any(|c| c == chat)
    }

    /// Stores an approval prompt for `chat`, unless it was stored for that chat
    /// before (a replayed turn asks again), then shows it in the background.
    /// Retried and resent after a restart like any reply; recorded once shown.
    pub async fn show_prompt(&self, chat: &ChatKey, part: PromptPart) {
        let once = format!("prompt:{}:{}", part.approval_id, chat.id());
        let message = Outbound { text: part.prompt.text.clone(), prompt: Some(part), ..Outbound::default() };
        if let Some((claim, stored)) = self.store(chat, message, None, &[], Some(once)).await {
            let delivery = self.clone();
            tokio::spawn(async move { delivery.send(claim, stored).await });
        }
    }

    /// Stores `message` and marks `answers` (journal events) answered, then sends
    /// it in the background. For command answers and notices.
    pub async fn reply(&self, chat: &ChatKey, message: Outbound, answers: &[String]) {
        if let Some((claim, stored)) = self.store(chat, message, None, answers, None).await {
            let delivery = self.clone();
            tokio::spawn(async move { delivery.send(claim, stored).await });
        }
    }

    /// Stores a turn's final reply (replacing the message it streamed into, if
    /// any), marks `answers` answered, then sends it when the chat's pace allows.
    /// `reply_entry` is the transcript entry the reply begins with, when known: a
    /// reply already stored or shown for another event is not stored again.
    pub async fn finish_turn(
        &self,
        chat: &ChatKey,
        message: Outbound,
        streamed: Option<Streamed>,
        answers: &[String],
        reply_entry: Option<String>,
    ) {
        if let Some((claim, stored)) = self.store(chat, message, streamed, answers, reply_entry).await {
            self.pacer.wait(chat).await;
            self.send(claim, stored).await;
        }
    }

    /// Marks events answered by a reply that the streamed message showed in full,
    /// noting the reply so that no replay sends it again.
    pub async fn shown(&self, answers: &[String], reply_entry: Option<String>) {
        if let Some(entry) = reply_entry {
            if let Err(e) = self.outbox.replied(entry).await {
                tracing::error!(error = %e, "cannot note a reply as shown");
            }
        }
        self.nothing_to_send(answers).await;
    }

    /// At a start, `alone` on the store or not: what is left of an earlier
    /// version's index ([`Outbox::settle_old_index`]). A failure only leaves the
    /// old keys read, so it is logged and the start goes on.
    pub async fn settle_old_index(&self, alone: bool) {
        if let Err(e) = self.outbox.settle_old_index(alone).await {
            tracing::warn!(error = %e, "cannot look through an earlier version's outbox index; its keys stay read");
        }
    }

    /// Forgets answered events and the notes of replies older than `age_ms`,
    /// except those of replies still waiting to be sent ([`Outbox::prune`]).
    pub async fn prune(&self, age_ms: u64) -> crate::store::StoreResult<usize> {
        self.outbox.prune(age_ms).await
    }

    /// Marks events answered when there is nothing (more) to send for them.
    pub async fn nothing_to_send(&self, answers: &[String]) {
        for event in answers {
            if let Err(e) = self.journal.done(event).await {
                tracing::error!(error = %e, "cannot mark a message answered");
            }
        }
    }

    /// Claims a new item, and stores it with its events marked answered; the
    /// item as stored too when nobody else can change it before it is sent (a
    /// process alone on its store: only the holder of the claim touches it).
    async fn store(
        &self,
        chat: &ChatKey,
        message: Outbound,
        streamed: Option<Streamed>,
        answers: &[String],
        reply_entry: Option<String>,
    ) -> Option<(Claim, Option<OutboxItem>)> {
        // A reply that answers events is stored only by the chat's holder (with
        // replicas: under its lease, taken again if let go of meanwhile), so an
        // event is answered once. Others (an approval prompt shown in an
        // approver's chat, a notice) are stored by whoever has them to say, and
        // sent by the chat's holder.
        let mut using = None;
        let mut fence = None;
        if !answers.is_empty() {
            using = self.owners.take(&chat.id()).await;
            match using.as_ref().map(|_| self.owners.fence(&chat.id())) {
                Some(Ok(lease)) => fence = lease,
                _ => {
                    self.lost_chat(answers);
                    return None;
                }
            }
        }
        let (busy, key, alone) = (self.busy.clone(), chat.clone(), !self.owners.shared());
        let claim = move |item: &OutboxItem| {
            let claim = Claim::take(&busy, item.seq, &key).expect("a fresh sequence number is nobody's");
            (claim, alone.then(|| item.clone()))
        };
        let stored =
            self.outbox.enqueue(chat.clone(), message, streamed, answers.to_vec(), reply_entry, fence, claim).await;
        drop(using);
        tracing::debug!(answers = ?answers, outcome = ?stored.as_ref().map(Stored::kind), "reply stored");
        match stored {
            Ok(Stored::New(claim)) => {
                // Marked answered with the item.
                self.journal.answered(answers);
                Some(claim)
            }
            // A replay of an event whose reply is stored: that one is sent.
            Ok(Stored::AlreadyAnswered) => {
                self.nothing_to_send(answers).await;
                None
            }
            Ok(Stored::NotOwner) => {
                self.lost_chat(answers);
                None
            }
            Err(e) => {
                // The event stays unanswered and is replayed after a restart.
                tracing::error!(error = %e, "cannot store a reply");
                None
            }
        }
    }

    /// A replica lost the chat before it stored its reply: its events go back
    /// to the journal for the chat's next holder.
    fn lost_chat(&self, answers: &[String]) {
        tracing::warn!("another replica took the chat before its reply was stored; that replica answers");
        for event in answers {
            self.journal.disown(event);
        }
    }

    /// Sends what is left of `item`, unless someone else owns it (the retry
    /// loop and recovery).
    pub async fn deliver(&self, item: &OutboxItem) {
        if let Some(claim) = Claim::take(&self.busy, item.seq, &item.chat) {
            self.send(claim, None).await;
        }
    }

    /// Sends the claimed item from its stored copy (it may be delivered by now),
    /// read back unless `stored` is that copy, as [`Delivery::store`] gives it.
    async fn send(&self, claim: Claim, stored: Option<OutboxItem>) {
        // Sent by the chat's holder only (with replicas: taken if free; held by
        // another replica, it is that one's to send), from the copy stored
        // after it took the chat.
        let Some(chat) = self.busy.lock().unwrap_or_else(|p| p.into_inner()).get(&claim.seq).cloned() else { return };
        let Some(using) = self.owners.take(&chat).await else { return };
        let read = match stored {
            Some(item) => Ok(Some(item)),
            None => self.outbox.get(claim.seq).await,
        };
        let item = match read {
            Ok(Some(item)) => item,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        if let Err(e) = self.send_rest(item).await {
            tracing::error!(error = %e, "cannot update the outbox");
        }
        drop((using, claim));
    }

    async fn send_rest(&self, mut item: OutboxItem) -> crate::store::StoreResult<()> {
        let Some(channel) = self.registry.channel(&item.chat.channel) else {
            // Its channel is not configured in this run: kept for a run that has it.
            return Ok(());
        };
        if let Some(part) = item.message.prompt.clone() {
            return self.send_prompt(&*channel, &item, part).await;
        }
        let caps = channel.capabilities();
        let parts = split(&parse(&item.message.text), caps.max_message_len, caps.length_unit);
        while item.delivered_parts < parts.len() {
            if !self.owners.holds(&item.chat.id()) {
                // Another replica holds the chat now: it sends the rest.
                return Ok(());
            }
            let index = item.delivered_parts;
            let part = &parts[index];
            let options = item.options(index);
            let streamed = item.stream_message.clone().filter(|_| index == 0 && caps.can_edit);
            let already_shown = item.stream_shown.as_deref() == Some(to_plain(part).as_str());
            let sent = match streamed {
                // The streamed message shows this part already: no edit that changes nothing.
                Some(_) if already_shown => Ok(()),
                Some(streamed) => match retry::round(&item.chat.channel, || channel.edit(&item.chat, &streamed, part))
                    .await
                {
                    Ok(()) => Ok(()),
                    // The streamed message is gone or cannot be edited: send anew.
                    Err(ChannelError::Rejected(_) | ChannelError::Unsupported(_)) => {
                        retry::round(&item.chat.channel, || channel.send(&item.chat, part, &options)).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                },
                None => retry::round(&item.chat.channel, || channel.send(&item.chat, part, &options)).await.map(|_| ()),
            };
            let counted = match &sent {
                Ok(()) => DeliveryOutcome::Delivered,
                Err(ChannelError::Rejected(_) | ChannelError::Unsupported(_)) => DeliveryOutcome::Refused,
                Err(_) => DeliveryOutcome::Retried,
            };
            crate::metrics::global().delivery(&item.chat.channel, counted);
            match sent {
                Ok(()) => {
                    item.delivered_parts += 1;
                    // The last part needs no mark: the item is removed next.
                    if item.delivered_parts < parts.len() && !self.mark(&item).await? {
                        // Another replica holds the chat now: it sends the rest.
                        return Ok(());
                    }
                }
                Err(e @ (ChannelError::Rejected(_) | ChannelError::Unsupported(_))) => {
                    // The platform will never take it (blocked bot, deleted chat).
                    tracing::warn!(chat = %item.chat.id(), error = %e, "reply refused by the platform; dropped");
                    break;
                }
                Err(e) => {
                    if let ChannelError::RateLimited(wait) = e {
                        self.pacer.hold(&item.chat, wait);
                    }
                    tracing::warn!(chat = %item.chat.id(), error = %e, "reply not delivered yet; kept for a retry");
                    return Ok(());
                }
            }
        }
        if let Err(e) = self.outbox.remove(&item).await {
            // Not removed: at least record every part as delivered, so that the
            // next round does not send the last one again.
            self.mark(&item).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Records the parts of `item` delivered so far, only while this process
    /// holds its chat (with replicas, a write fenced by the chat's lease); false
    /// when it does not (another replica's progress is not overwritten).
    async fn mark(&self, item: &OutboxItem) -> crate::store::StoreResult<bool> {
        match self.owners.fence(&item.chat.id()) {
            Ok(fence) => self.outbox.mark(item, fence).await,
            Err(_) => Ok(false),
        }
    }

    /// Every stored reply not wholly delivered.
    pub async fn undelivered(&self) -> crate::store::StoreResult<Vec<OutboxItem>> {
        self.outbox.pending().await
    }

    /// How many items someone is sending right now.
    pub fn sending(&self) -> usize {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many replies are not wholly delivered, and when the oldest was stored (ms).
    pub async fn pending_summary(&self) -> crate::store::StoreResult<(usize, Option<u64>)> {
        let items = self.outbox.pending().await?;
        Ok((items.len(), items.iter().map(|i| i.created_at).min()))
    }

    /// Shows a stored approval prompt, unless its request ended meanwhile, and
    /// records where it was shown (so the buttons are replaced when it ends).
    async fn send_prompt(
        &self,
        channel: &dyn Channel,
        item: &OutboxItem,
        part: PromptPart,
    ) -> crate::store::StoreResult<()> {
        let id = part.approval_id.as_str();
        // A store error keeps the item for the next round: it is no end of the request.
        let pending = self.records.state(id).await?.is_some_and(|(state, _)| state == ApprovalState::Pending);
        if !pending || self.records.shown_by(id, item.seq).await? {
            // Decided, expired or cancelled before anyone saw it: nothing to ask.
            // Or shown and recorded, then the process died before the item was
            // removed: shown once is enough.
            return self.outbox.remove(item).await;
        }
        let mut prompt = part.prompt;
        if !channel.capabilities().buttons {
            prompt.buttons.clear();
        }
        match retry::round(&item.chat.channel, || channel.show_approval(&item.chat, &prompt)).await {
            Ok(sent) => {
                crate::metrics::global().delivery(&item.chat.channel, DeliveryOutcome::Delivered);
                let copy = Copy { chat: item.chat.clone(), sent: sent.clone(), asked_in: Some(part.asked_in) };
                self.records.add(id, item.seq, copy).await?;
                self.outbox.remove(item).await?;
                // Ended while it was being shown: whoever ended it may have missed this
                // copy. (On a store error it is resolved when its buttons are pressed.)
                if let Ok(Some((state, by))) = self.records.state(id).await {
                    if state != ApprovalState::Pending {
                        let by = by.map(|b| self.names.display(&b));
                        let text = outcome_text(state, by.as_deref());
                        let resolve = || channel.resolve_approval(&item.chat, &sent, &text);
                        let _ = retry::round(&item.chat.channel, resolve).await;
                        self.records.forget_copy(id, item.seq).await;
                    }
                }
                Ok(())
            }
            Err(e @ (ChannelError::Rejected(_) | ChannelError::Unsupported(_))) => {
                crate::metrics::global().delivery(&item.chat.channel, DeliveryOutcome::Refused);
                tracing::warn!(chat = %item.chat.id(), error = %e, "an approval prompt was refused by the platform");
                self.outbox.remove(item).await
            }
            Err(e) => {
                crate::metrics::global().delivery(&item.chat.channel, DeliveryOutcome::Retried);
                if let ChannelError::RateLimited(wait) = e {
                    self.pacer.hold(&item.chat, wait);
                }
                tracing::warn!(chat = %item.chat.id(), error = %e, "an approval prompt was not shown yet; kept for a retry");
                Ok(())
            }
        }
    }

    /// After a restart: marks the events that undelivered replies answer as
    /// answered (a replay must not answer them again), then sends those replies
    /// in the background. Returns how many there were.
    pub async fn recover(&self) -> crate::store::StoreResult<usize> {
        let items = self.outbox.pending().await?;
        self.settle_old_index(true).await;
        for event in items.iter().flat_map(|i| &i.answers) {
            self.journal.done(event).await?;
        }
        let count = items.len();
        for item in items {
            let delivery = self.clone();
            tokio::spawn(async move { delivery.deliver(&item).await });
        }
        Ok(count)
    }

    /// Gives undelivered replies a new round every `retry::RETRY_EVERY`, each in
    /// its own task (a stuck channel holds up no other), and drops those older
    /// than `retry::GIVE_UP_AFTER`. Runs until aborted.
    pub async fn retry_loop(self) {
        loop {
            tokio::time::sleep(retry::RETRY_EVERY).await;
            self.retry_once().await;
        }
    }

    /// One round of the retry loop: every stored item nobody owns (of a chat
    /// this process holds) gets a new round of its own.
    pub async fn retry_once(&self) {
        let Ok(items) = self.outbox.pending().await else { return };
        let cutoff = now_ms().saturating_sub(retry::GIVE_UP_AFTER.as_millis() as u64);
        for item in items {
            if !self.owners.holds(&item.chat.id()) {
                continue;
            }
            if item.created_at != 0 && item.created_at < cutoff {
                if let Some(_claim) = Claim::take(&self.busy, item.seq, &item.chat) {
                    tracing::warn!(chat = %item.chat.id(), "a reply undelivered for a day was dropped");
                    crate::metrics::global().delivery(&item.chat.channel, DeliveryOutcome::Expired);
                    let _ = self.outbox.remove(&item).await;
                }
                continue;
            }
            // Claimed here, before the task runs: whoever counts what is being
            // sent (a stop) sees it at once.
            if let Some(claim) = Claim::take(&self.busy, item.seq, &item.chat) {
                let delivery = self.clone();
                tokio::spawn(async move { delivery.send(claim, None).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchboard_fakes::channel::Op;
    use switchboard_fakes::FakeChannel;

    use super::*;
    use crate::gateway::registry::ChannelEntry;
    use crate::store::TestBackend;

    /// The outbox's index, as stored.
    const INDEX_SPACE: &str = "outbox-index";

    /// The same set-up on each store backend.
    fn setups() -> Vec<(TestBackend, Delivery, FakeChannel, Journal)> {
        crate::store::test_backends().into_iter().map(setup).collect()
    }

    fn setup(backend: TestBackend) -> (TestBackend, Delivery, FakeChannel, Journal) {
        let (delivery, fake, journal) = parts(backend.store.clone());
        (backend, delivery, fake, journal)
    }

    /// A delivery alone on `store`, to a fake channel, and its journal.
    fn parts(store: Arc<dyn crate::store::Store>) -> (Delivery, FakeChannel, Journal) {
        let fake = FakeChannel::new("fake");
        let entry = ChannelEntry { channel: Arc::new(fake.clone()), common: Default::default() };
        let registry = Registry::new(vec![entry], &[]);
        let journal = Journal::new(store.clone());
        let records = PromptRecords::new(store.clone());
        let delivery = Delivery::new(
            Outbox::new(store),
            journal.clone(),
            registry.clone(),
            Pacer::new(registry),
            records,
            Names::default(),
            Owners::alone(),
        );
        (delivery, fake, journal)
    }

    fn text(t: &str) -> Outbound {
        Outbound { text: t.into(), ..Outbound::default() }
    }

    async fn stored(delivery: &Delivery) -> usize {
        delivery.outbox.pending().await.unwrap().len()
    }

    /// Alone on its store, a reply just stored is sent from the copy in hand:
    /// only the holder of its claim can change it before it is sent, so reading
    /// it back would cost a read a message for nothing. An item the retry loop
    /// takes up is read back (it may be delivered by now).
    #[tokio::test]
    async fn alone_a_reply_just_stored_is_sent_without_reading_it_back() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let dir = tempfile::tempdir().unwrap();
        let sqlite = crate::store::SqliteStore::open(dir.path(), 8).unwrap();
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        sqlite.before_read(Some(Arc::new(move |space: &str, _key: &str| {
            if space == "outbox" {
                counted.fetch_add(1, SeqCst);
            }
        })));
        let (delivery, fake, _journal) = parts(Arc::new(sqlite));
        let chat = fake.direct("1");
        delivery.finish_turn(&chat, text("the answer"), None, &[], None).await;
        assert_eq!(fake.texts_in("1"), ["the answer"]);
        assert_eq!(reads.load(SeqCst), 0, "the reply was read back");
        assert_eq!(stored(&delivery).await, 0, "delivered and forgotten");

        let left = delivery.outbox.enqueue(chat.clone(), text("left over"), None, vec![], None, None, |_| ());
        assert_eq!(left.await.unwrap(), Stored::New(()));
        delivery.retry_once().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while stored(&delivery).await > 0 {
            assert!(std::time::Instant::now() < deadline, "the retry loop never sent the item");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fake.texts_in("1"), ["the answer", "left over"]);
        assert_eq!(reads.load(SeqCst), 1, "the retry loop's item is read back once");
    }

    /// The race the retry loop used to lose: a turn stores its reply and waits for
    /// the chat's pace; the loop's round comes meanwhile. Now it leaves the item to
    /// the turn, and the reply is sent once, by its owner, after the wait.
    #[tokio::test]
    async fn the_retry_loop_never_touches_a_reply_its_turn_still_owns() {
        for (backend, delivery, fake, _journal) in setups() {
            eprintln!("on {}", backend.name);
            let chat = fake.direct("1");
            delivery.pacer.hold(&chat, Duration::from_millis(400));
            let turn = {
                let (d, chat) = (delivery.clone(), chat.clone());
                tokio::spawn(async move { d.finish_turn(&chat, text("the answer"), None, &[], None).await })
            };
            // The chat's pace is held on while the turn stores its reply (a slow
            // store could outlast one hold: the reply would go out and be gone
            // before this saw it stored), then for long enough to run the loop.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while stored(&delivery).await == 0 {
                assert!(std::time::Instant::now() < deadline, "the turn never stored its reply");
                delivery.pacer.hold(&chat, Duration::from_millis(400));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            delivery.pacer.hold(&chat, Duration::from_secs(2));
            delivery.retry_once().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(fake.calls_of(Op::Send).is_empty(), "the retry loop sent a reply its turn owned");
            turn.await.unwrap();
            assert_eq!(fake.texts_in("1"), ["the answer"]);
            delivery.retry_once().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(fake.calls_of(Op::Send).len(), 1, "sent once");
        }
    }

    #[tokio::test]
    async fn a_replayed_event_finds_its_stored_reply_and_stores_no_second_one() {
        for (backend, delivery, fake, journal) in setups() {
            eprintln!("on {}", backend.name);
            let chat = fake.direct("1");
            let event = fake.message(chat.clone(), switchboard_channel_core::ChatKind::Direct, "1", "hi", false);
            journal.record(&event).await.unwrap();
            // A crash after the reply was stored (its event marked answered with it),
            // before it was sent:
            let answers = vec![event.event_id.clone()];
            let first = delivery.outbox.enqueue(chat.clone(), text("once"), None, answers, None, None, |_| ());
            assert_eq!(first.await.unwrap(), Stored::New(()));
            // The restart recovers the stored reply and marks the event answered...
            assert_eq!(delivery.recover().await.unwrap(), 1);
            assert!(journal.unfinished().await.unwrap().is_empty(), "no replay of an answered event");
            // ...and a replay that happened anyway stores nothing more.
            delivery.reply(&chat, text("once"), std::slice::from_ref(&event.event_id)).await;
            fake.wait_until("the reply", Duration::from_secs(5), |f| !f.messages_in("1").is_empty()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(fake.texts_in("1"), ["once"]);
        }
    }

    #[tokio::test]
    async fn a_reply_that_answered_several_messages_is_sent_once_whichever_is_replayed() {
        for (backend, delivery, fake, journal) in setups() {
            eprintln!("on {}", backend.name);
            let chat = fake.direct("1");
            let mut events = Vec::new();
            for text in ["one", "two", "three"] {
                let event = fake.message(chat.clone(), switchboard_channel_core::ChatKind::Direct, "1", text, false);
                journal.record(&event).await.unwrap();
                events.push(event.event_id);
            }
            // "one" and "two" were recorded back to back and answered by one reply (its
            // transcript entry "msg-r1"), sent for "one"; then a crash before "two" was
            // marked answered. Its replay finds the same reply, whether it was sent...
            let reply = || Some("msg-r1".to_string());
            delivery.finish_turn(&chat, text("to one and two"), None, &events[..1], reply()).await;
            delivery.finish_turn(&chat, text("to one and two"), None, &events[1..2], reply()).await;
            // ...or only ever shown as the streamed message.
            delivery.shown(&events[2..], Some("msg-r2".into())).await;
            delivery.finish_turn(&chat, text("to three"), None, &events[2..], Some("msg-r2".into())).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(fake.texts_in("1"), ["to one and two"], "each reply once");
            assert!(journal.unfinished().await.unwrap().is_empty(), "every message answered");
            // A stored item not yet noted as sent (killed in between) is found too.
            let r3 = || Some("msg-r3".to_string());
            let stored = delivery.outbox.enqueue(chat.clone(), text("x"), None, vec![], r3(), None, |_| ());
            assert_eq!(stored.await.unwrap(), Stored::New(()));
            let again = delivery.outbox.enqueue(chat.clone(), text("x"), None, vec![], r3(), None, |_| ());
            assert_eq!(again.await.unwrap(), Stored::AlreadyAnswered);
            // Notes are forgotten with the journal's answered events, but not the
            // note of a reply still waiting to be sent (msg-r3's).
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(delivery.prune(0).await.unwrap(), 5, "the three events, msg-r1 and msg-r2");
            let again = delivery.outbox.enqueue(chat.clone(), text("x"), None, vec![], r3(), None, |_| ());
            assert_eq!(again.await.unwrap(), Stored::AlreadyAnswered);
        }
    }

    /// A reply still waiting to be sent is found when its event is replayed or
    /// redelivered, however long it waits: its event and its note outlive their
    /// age while it waits, and are forgotten once it is gone. The index an
    /// earlier version kept beside the items is read while any of it is left;
    /// its keys whose item is gone are forgotten at start.
    #[tokio::test]
    async fn a_waiting_reply_keeps_what_finds_it_until_it_is_gone() {
        for (backend, delivery, fake, journal) in setups() {
            eprintln!("on {}", backend.name);
            let chat = fake.direct("1");
            let event = fake.message(chat.clone(), switchboard_channel_core::ChatKind::Direct, "1", "hi", false);
            journal.record(&event).await.unwrap();
            let answers = vec![event.event_id.clone()];
            let enqueue = |answers: Vec<String>, entry: &str| {
                let (delivery, chat, entry) = (delivery.clone(), chat.clone(), entry.to_string());
                async move {
                    delivery
                        .outbox
                        .enqueue(chat, text("waiting"), None, answers, Some(entry), None, |_| ())
                        .await
                        .unwrap()
                }
            };
            assert_eq!(enqueue(answers.clone(), "msg-w").await, Stored::New(()));
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(delivery.prune(0).await.unwrap(), 0, "its event and note are kept while it waits");
            assert_eq!(enqueue(answers.clone(), "msg-other").await, Stored::AlreadyAnswered, "by its event");
            assert_eq!(enqueue(vec![], "msg-w").await, Stored::AlreadyAnswered, "by its transcript entry");
            // Sent (or dropped): what found it is forgotten at its age.
            let items = delivery.outbox.pending().await.unwrap();
            assert_eq!(items.len(), 1);
            delivery.outbox.remove(&items[0]).await.unwrap();
            assert_eq!(delivery.prune(0).await.unwrap(), 2, "its event and its note");
            assert!(journal.get(&event.event_id).await.unwrap().is_none());
            // An earlier version indexed its items, and forgot their events and
            // notes while they waited: its keys are read while any is left, and
            // those whose item is gone are forgotten at start.
            let store = backend.store.clone();
            let mut old = items[0].clone();
            (old.answers, old.reply_entry) = (vec!["telegram:forgotten".into()], Some("msg-old".into()));
            old.seq = delivery.outbox.next_seq().await.unwrap();
            let key = format!("{:020}", old.seq);
            store.kv_put("outbox", &key, &serde_json::to_vec(&old).unwrap()).unwrap();
            store.kv_put(INDEX_SPACE, "e:telegram:forgotten", key.as_bytes()).unwrap();
            store.kv_put(INDEX_SPACE, "r:msg-old", key.as_bytes()).unwrap();
            store.kv_put(INDEX_SPACE, "e:telegram:sent-long-ago", b"00000000000000000001").unwrap();
            // (Its sending, begun by the recovery, cannot end meanwhile.)
            fake.stall(true);
            assert_eq!(delivery.recover().await.unwrap(), 1);
            let keys: Vec<String> = store.kv_scan(INDEX_SPACE, "").unwrap().into_iter().map(|(k, _)| k).collect();
            assert_eq!(keys, ["e:telegram:forgotten", "r:msg-old"], "the key whose item is gone is forgotten");
            let by_event = enqueue(vec!["telegram:forgotten".into()], "msg-third").await;
            assert_eq!(by_event, Stored::AlreadyAnswered, "found by the old key of its event");
            assert_eq!(enqueue(vec![], "msg-old").await, Stored::AlreadyAnswered, "and of its entry");
            fake.stall(false);
            // Once none is left, a start alone stops reading them.
            store.kv_remove("outbox", &key).unwrap();
            assert_eq!(delivery.outbox.settle_old_index(true).await.unwrap(), 0);
            assert!(store.kv_scan(INDEX_SPACE, "").unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn an_edit_that_would_change_nothing_is_skipped() {
        for (backend, delivery, fake, _journal) in setups() {
            eprintln!("on {}", backend.name);
            let chat = fake.direct("1");
            let sent = {
                use switchboard_channel_core::Channel;
                let blocks = switchboard_channel_core::markdown::parse("all of it");
                fake.send(&chat, &blocks, &Default::default()).await.unwrap()
            };
            let streamed = Streamed { sent, shown: "all of it".into() };
            delivery.finish_turn(&chat, text("all of it"), Some(streamed), &[], None).await;
            assert!(fake.calls_of(Op::Edit).is_empty(), "an identical edit was sent");
            assert_eq!(stored(&delivery).await, 0, "and the item is done");
        }
    }
}
