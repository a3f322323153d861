//! Streaming at the channel's pace, and the outbox owning every retry.

use std::time::{Duration, Instant};

use switchboard_channel_core::{Capabilities, ChannelError};
use switchboard_fakes::channel::Op;
use switchboard_fakes::{FakeChannel, Reply};

use crate::harness::Gw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_is_one_message_edited_no_faster_than_the_configured_interval() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__EDIT_INTERVAL_MS", "600");
    gw.start().await;
    gw.llm.set_chunk_delay(Duration::from_millis(120));
    let words: Vec<String> = (0..24).map(|i| format!("word{i} ")).collect();
    gw.llm.push(Reply::chunks(words.clone()));
    gw.fake.dm("42", "stream please").await;
    gw.wait_text("42", "word23").await;
    let messages = gw.fake.messages_in("42");
    assert_eq!(messages.len(), 1, "one message, edited: {:?}", gw.fake.texts_in("42"));
    assert_eq!(messages[0].text, words.concat().trim());
    assert!(messages[0].edits.len() >= 2, "several edits: {:?}", messages[0].edits);
    let sends: Vec<Instant> =
        gw.fake.calls().into_iter().filter(|c| matches!(c.op, Op::Send | Op::Edit)).map(|c| c.at).collect();
    for pair in sends.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap >= Duration::from_millis(550), "two writes {gap:?} apart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_cannot_edit_gets_the_reply_whole() {
    let caps = Capabilities { can_edit: false, typing_lasts: None, ..FakeChannel::default_capabilities() };
    let mut gw = Gw::with_channel(FakeChannel::with_capabilities("fake", caps)).await;
    gw.start().await;
    gw.llm.set_chunk_delay(Duration::from_millis(100));
    gw.llm.push(Reply::chunks((0..10).map(|i| format!("part{i} "))));
    gw.fake.dm("42", "stream please").await;
    gw.wait_text("42", "part9").await;
    assert_eq!(gw.fake.messages_in("42").len(), 1);
    assert!(gw.fake.calls_of(Op::Edit).is_empty() && gw.fake.calls_of(Op::Typing).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_retries_transient_failures_waits_out_rate_limits_and_drops_rejections() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.fake.fail_next(Op::Send, ChannelError::Transient("network".into()));
    gw.fake.fail_next(Op::Send, ChannelError::Transient("network".into()));
    gw.llm.push(Reply::text("through the storm"));
    gw.fake.dm("42", "hi").await;
    gw.wait_text("42", "through the storm").await;
    assert_eq!(gw.fake.calls_of(Op::Send).len(), 3, "two failures, then the send");

    gw.fake.fail_next(Op::Send, ChannelError::RateLimited(Duration::from_secs(1)));
    gw.llm.push(Reply::text("after the limit"));
    gw.fake.dm("43", "hi").await;
    gw.wait_text("43", "after the limit").await;
    let sends: Vec<Instant> = gw.fake.calls_of(Op::Send).into_iter().map(|c| c.at).collect();
    let gap = sends[sends.len() - 1].duration_since(sends[sends.len() - 2]);
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, before the platform allowed");

    gw.fake.fail_next(Op::Send, ChannelError::Rejected("bot was blocked".into()));
    gw.llm.push(Reply::text("never seen"));
    gw.fake.dm("44", "hi").await;
    gw.fake
        .wait_until("the refused send", crate::harness::WAIT, |f| {
            f.calls_of(Op::Send).iter().any(|c| c.failed && c.chat.as_ref().is_some_and(|k| k.chat == "44"))
        })
        .await;
    assert_eq!(gw.count_settled("44", "never seen").await, 0, "a rejection is not retried");
    gw.llm.push(Reply::text("still working"));
    gw.fake.dm("44", "again").await;
    gw.wait_text("44", "still working").await;
}
