//! Two channels in one daemon: each journaled, judged and answered, neither
//! holding up the other.

use switchboard_fakes::channel::Op;
use switchboard_fakes::{FakeTelegram, Fallback};

use crate::harness::{Gw, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_and_a_second_channel_serve_side_by_side_and_a_stuck_one_blocks_nothing() {
    let telegram = FakeTelegram::start().await;
    let mut gw = Gw::new().await;
    gw.with_telegram(&telegram);
    gw.llm.set_fallback(Fallback::Echo);
    gw.start().await;
    let names: Vec<String> = gw.statuses().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["telegram", "fake"]);

    telegram.send_dm(42, "hello from telegram");
    gw.fake.dm("42", "hello from fake").await;
    telegram
        .wait_until("the telegram answer", WAIT, |t| {
            t.messages_in(42).iter().any(|m| m.plain_text.contains("hello from telegram"))
        })
        .await;
    gw.wait_text("42", "hello from fake").await;

    // The fake channel's sends hang (a dead connection); Telegram keeps answering.
    gw.fake.stall(true);
    gw.fake.dm("42", "stuck on fake").await;
    telegram.send_dm(43, "still answered on telegram");
    telegram
        .wait_until("telegram unaffected", WAIT, |t| {
            t.messages_in(43).iter().any(|m| m.plain_text.contains("still answered on telegram"))
        })
        .await;
    assert!(!gw.fake.texts_in("42").iter().any(|t| t.contains("stuck on fake")));
    gw.fake.stall(false);
    gw.wait_text("42", "stuck on fake").await;
    assert_eq!(
        gw.fake.calls_of(Op::Send).iter().filter(|c| c.text.as_deref().is_some_and(|t| t.contains("stuck"))).count(),
        1
    );

    // An admin's /status shows every channel's health; a guest's does not.
    telegram.send_dm(7, "/status");
    telegram
        .wait_until("an admin's status", WAIT, |t| {
            t.messages_in(7).iter().any(|m| m.plain_text.contains("Channels: telegram: polling; fake: fake: connected"))
        })
        .await;
    telegram.send_dm(42, "/status");
    telegram
        .wait_until("a guest's status", WAIT, |t| {
            t.messages_in(42).iter().any(|m| m.plain_text.contains("Pending approvals"))
        })
        .await;
    assert!(telegram.messages_in(42).iter().all(|m| !m.plain_text.contains("Channels:")));
}
