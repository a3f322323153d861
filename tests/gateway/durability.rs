//! Group commit keeps its promise: no platform acknowledgement and no reply goes out
//! before the flush that makes its write durable has ended, and a failed flush is a
//! failed write.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use switchboard_channel_core::ChatKind;
use switchboard_fakes::channel::Op;
use switchboard_fakes::{Fallback, Gate, Reply};

use crate::harness::Gw;

/// A disk whose flushes wait while it is held.
#[derive(Clone, Default)]
struct SlowDisk(Arc<(Mutex<bool>, Condvar)>);

impl SlowDisk {
    fn hold(&self) {
        *self.0 .0.lock().unwrap() = true;
    }

    fn release(&self) {
        *self.0 .0.lock().unwrap() = false;
        self.0 .1.notify_all();
    }

    fn hook(&self) -> switchboard::store::FlushHook {
        let disk = self.clone();
        Box::new(move || {
            let (held, released) = &*disk.0;
            let mut held = held.lock().unwrap();
            while *held {
                held = released.wait(held).unwrap();
            }
            Ok(())
        })
    }
}

/// How long a held flush is left held before the test looks: far longer than
/// anything takes here when the disk is not held.
const HELD: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledgement_before_the_flush_that_covers_the_event() {
    let mut gw = Gw::new().await;
    gw.llm.set_fallback(Fallback::Echo);
    gw.start().await;
    let disk = SlowDisk::default();
    gw.before_flush(Some(disk.hook()));
    disk.hold();
    let fake = gw.fake.clone();
    let delivering = tokio::spawn(async move { fake.dm("1", "hello while the disk is slow").await });
    tokio::time::sleep(HELD).await;
    assert!(!delivering.is_finished(), "the platform was acknowledged before the event was on disk");
    assert!(gw.llm.requests().is_empty(), "a turn started for an event not yet durable");
    disk.release();
    let delivered = delivering.await.unwrap();
    delivered.result.expect("journaled once the flush ended");
    assert!(delivered.took >= HELD, "acknowledged after {:?}", delivered.took);
    gw.wait_text("1", "echo: hello while the disk is slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reply_is_sent_before_the_flush_that_stores_it() {
    let mut gw = Gw::new().await;
    let gate = Gate::new();
    gw.llm.push(Reply::text("the stored answer").gated(&gate));
    gw.start().await;
    let disk = SlowDisk::default();
    gw.before_flush(Some(disk.hook()));
    gw.fake.dm("1", "question").await.result.expect("journaled");
    gw.llm.wait_for_requests(1, Duration::from_secs(10)).await;
    // The model answers now, while every flush waits.
    disk.hold();
    gate.open();
    tokio::time::sleep(HELD).await;
    assert!(gw.fake.calls_of(Op::Send).is_empty(), "a reply went out before it was stored durably");
    disk.release();
    gw.wait_text("1", "the stored answer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_is_a_failed_delivery_and_nothing_is_answered() {
    let mut gw = Gw::new().await;
    gw.llm.set_fallback(Fallback::Echo);
    gw.start().await;
    assert!(gw.readiness().await.ready(), "{:?}", gw.readiness().await.lines());
    gw.before_flush(Some(Box::new(|| Err("injected: the disk is gone".into()))));
    let event = gw.fake.message(gw.fake.direct("1"), ChatKind::Direct, "1", "lost to the disk?", false);
    let delivered = gw.fake.deliver(event.clone()).await;
    assert!(delivered.result.is_err(), "a journal write that never reached the disk was acknowledged");
    tokio::time::sleep(HELD).await;
    assert!(gw.llm.requests().is_empty(), "a turn ran for an event that was not stored");
    // The kernel may have dropped what it could not write: a later flush proves
    // nothing, so the store takes no more writes, and readiness says so (`serve`
    // ends on it, for its supervisor to start it again).
    gw.before_flush(None);
    assert!(gw.fake.deliver(event.clone()).await.result.is_err(), "a write after a failed flush");
    let readiness = gw.readiness().await;
    assert!(!readiness.ready());
    let store = &readiness.lines()[0];
    assert!(store.starts_with("store: cannot write") && store.contains("restart switchboard"), "{store}");
    // Started again (the journal write may have landed after all), the
    // platform's redelivery of the event is answered once.
    gw.crash();
    gw.start().await;
    assert!(gw.readiness().await.ready(), "{:?}", gw.readiness().await.lines());
    let again = gw.fake.deliver(event).await;
    again.result.expect("journaled");
    gw.wait_text("1", "echo: lost to the disk?").await;
    assert_eq!(gw.count_settled("1", "echo: lost to the disk?").await, 1);
}
