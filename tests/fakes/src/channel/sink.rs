//! An `InboundSink` that records what an adapter delivers, for adapter tests: it
//! can refuse deliveries (a journal that is down), hold them (a journal write
//! still under way) and wait for events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_channel_core::{Click, Command, DeliverError, Inbound, InboundEvent, InboundKind, InboundSink};

/// How long the `wait` helpers wait before failing the test.
pub const SINK_WAIT: Duration = Duration::from_secs(10);

/// Collects delivered events; can be told to refuse the next N deliveries, or
/// to hold every delivery until released.
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<InboundEvent>>,
    /// Every call of `deliver`, refused ones included.
    attempts: AtomicUsize,
    refuse: AtomicUsize,
    /// True while deliveries are held.
    holding: tokio::sync::watch::Sender<bool>,
    /// Deliveries waiting to be released now.
    held: AtomicUsize,
}

impl RecordingSink {
    /// A new, empty sink.
    pub fn new() -> Arc<RecordingSink> {
        Arc::new(RecordingSink::default())
    }

    /// The next `n` deliveries fail.
    pub fn refuse_next(&self, n: usize) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    /// From now on every delivery waits, not yet accepted, until [`release`](Self::release).
    pub fn hold(&self) {
        self.holding.send_replace(true);
    }

    /// Lets the held deliveries (and later ones) go on.
    pub fn release(&self) {
        self.holding.send_replace(false);
    }

    /// Deliveries waiting to be released now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Every accepted event, in order.
    pub fn events(&self) -> Vec<InboundEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls of `deliver`, refused ones included.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` events were accepted and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<InboundEvent> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            assert!(start.elapsed() < SINK_WAIT, "timed out waiting for {n} events; got {events:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `n`th accepted event (1-based), which must be a message.
    pub async fn message(&self, n: usize) -> (String, Inbound) {
        let event = self.wait_for(n).await.remove(n - 1);
        match event.kind {
            InboundKind::Message(inbound) => (event.event_id, inbound),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The `n`th accepted event (1-based), which must be a command.
    pub async fn command(&self, n: usize) -> (String, Command) {
        let event = self.wait_for(n).await.remove(n - 1);
        match event.kind {
            InboundKind::Command(command) => (event.event_id, command),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    /// The `n`th accepted event (1-based), which must be a click.
    pub async fn click(&self, n: usize) -> (String, Click) {
        let event = self.wait_for(n).await.remove(n - 1);
        match event.kind {
            InboundKind::Click(click) => (event.event_id, click),
            other => panic!("expected a click, got {other:?}"),
        }
    }
}

#[async_trait]
impl InboundSink for RecordingSink {
    async fn deliver(&self, event: InboundEvent) -> Result<(), DeliverError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let mut holding = self.holding.subscribe();
        if *holding.borrow_and_update() {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _ = holding.wait_for(|held| !*held).await;
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
        let refused = self.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if refused {
            return Err(DeliverError("journal unavailable (test)".to_owned()));
        }
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        Ok(())
    }
}
