//! Busy conversations: what arrives while a turn runs is collected, queued or
//! interrupts, within bounds; /cancel drops what waits; guests are rate limited.
//! A busy daemon: turns beyond `gateway.max_concurrent_turns` wait in line, where
//! `/cancel` reaches them and an interrupt leaves them alone; guests leave a quarter
//! of the places to others; a reply waiting for the platform holds no place.
//! Each turn is held open by a gate on the fake model, so nothing depends on timing.

use std::time::Duration;

use switchboard_channel_core::{ChannelError, ChatKind};
use switchboard_fakes::channel::Op;
use switchboard_fakes::{Gate, Reply};

use crate::harness::{Gw, WAIT};

/// Holds the first turn of DM `user` open, sends `texts` behind it, and waits
/// until every one of them was judged (a `/status` behind them is answered).
async fn burst_behind_a_held_turn(gw: &Gw, user: &str, gate: &Gate, texts: &[String]) {
    gw.llm.push(Reply::text("first answered").gated(gate));
    gw.fake.dm(user, "first").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    for text in texts {
        gw.fake.dm(user, text).await;
    }
    gw.fake.dm(user, "/status").await;
    gw.wait_text(user, "Queued or running").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_mid_turn_are_answered_together_in_one_model_call() {
    let mut gw = Gw::new().await;
    gw.start().await;
    let gate = Gate::new();
    let texts: Vec<String> = (1..=15).map(|n| format!("burst {n}")).collect();
    burst_behind_a_held_turn(&gw, "7", &gate, &texts).await;
    let status = gw.wait_text("7", "Queued or running").await;
    assert!(status.text.contains("Queued or running: 16"), "{}", status.text);

    gw.llm.push(Reply::text("all of them answered"));
    gate.open();
    gw.wait_text("7", "all of them answered").await;
    assert_eq!(gw.count_settled("7", "answered").await, 2, "two replies: the first, then the batch");
    let requests = gw.llm.requests();
    assert_eq!(requests.len(), 2, "one model call for the whole burst");
    let batch = requests[1].unanswered_user_text();
    let trailing = requests[1].messages().iter().rev().take_while(|m| m["role"] == "user").count();
    assert_eq!(trailing, 15, "each message its own entry, so a replay records only what is missing");
    for n in 1..=15 {
        assert!(batch.contains(&format!(">burst {n}</message>")), "burst {n} missing: {batch}");
    }
    assert_eq!(batch.matches("tier=\"admin\" at=\"").count(), 15, "each attributed and timed: {batch}");
    assert_eq!(batch.lines().count(), 15, "{batch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_does_not_fit_the_waiting_room_is_turned_away_with_a_notice() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__MAX_WAITING", "3");
    gw.start().await;
    let gate = Gate::new();
    let texts: Vec<String> = (1..=5).map(|n| format!("burst {n}")).collect();
    burst_behind_a_held_turn(&gw, "7", &gate, &texts).await;
    let notices = gw.fake.texts_in("7").iter().filter(|t| t.contains("did not read this one")).count();
    assert_eq!(notices, 1, "said once, not once per message: {:?}", gw.fake.texts_in("7"));
    assert!(gw.fake.texts_in("7").iter().any(|t| t.contains("(3 waiting)")));

    gw.llm.push(Reply::text("three answered"));
    gate.open();
    gw.wait_text("7", "three answered").await;
    let batch = gw.llm.requests()[1].last_user_text();
    assert!(batch.contains(">burst 3</message>") && !batch.contains("burst 4"), "{batch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_answers_each_message_in_its_own_turn() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__BUSY", "queue");
    gw.start().await;
    let gate = Gate::new();
    let texts: Vec<String> = (1..=3).map(|n| format!("q{n}")).collect();
    burst_behind_a_held_turn(&gw, "7", &gate, &texts).await;
    for n in 1..=3 {
        gw.llm.push(Reply::text(&format!("reply {n}")));
    }
    gate.open();
    gw.wait_text("7", "reply 3").await;
    let asked: Vec<String> = gw.llm.requests().iter().map(|r| r.last_user_text()).collect();
    assert_eq!(asked, ["first", "q1", "q2", "q3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_running_turn_and_answers_what_came_after() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__BUSY", "interrupt");
    gw.start().await;
    let gate = Gate::new();
    gw.llm.push(Reply::text("the stale answer").gated(&gate));
    gw.fake.dm("7", "first").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.llm.push(Reply::text("the fresh answer"));
    gw.fake.dm("7", "no wait, this instead").await;
    gw.wait_text("7", "the fresh answer").await;
    gate.open();
    assert_eq!(gw.count_settled("7", "the stale answer").await, 0, "the interrupted turn says nothing");
    let requests = gw.llm.requests();
    assert_eq!(requests.len(), 2);
    let history = requests[1].all_text();
    assert!(history.contains("first") && history.contains("no wait, this instead"), "{history}");
}

/// An interrupt stops only what its sender could stop with `/cancel`: a guest's
/// message in a group waits for the admin's turn instead of cutting it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_interrupt_someone_elses_turn() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__BUSY", "interrupt");
    gw.set("SWITCHBOARD_FAKE__ALLOWED_GROUPS", "team");
    gw.start().await;
    let gate = Gate::new();
    gw.llm.push(Reply::text("the admin's answer").gated(&gate));
    gw.fake.group("team", "7", "a long question", true).await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.llm.push(Reply::text("the guest's answer"));
    gw.fake.group("team", "42", "stop that and listen to me", true).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(gw.llm.requests().len(), 1, "the admin's turn goes on");
    gate.open();
    gw.wait_text("team", "the guest's answer").await;
    assert_eq!(gw.count_settled("team", "the admin's answer").await, 1, "the admin's turn was not cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_drops_what_waits_and_says_how_much() {
    let mut gw = Gw::new().await;
    gw.start().await;
    let gate = Gate::new();
    let texts: Vec<String> = (1..=4).map(|n| format!("w{n}")).collect();
    burst_behind_a_held_turn(&gw, "7", &gate, &texts).await;
    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "cancel", "").await;
    gw.wait_text("7", "Cancelled. 4 waiting messages were dropped unread.").await;
    gate.open();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(gw.llm.requests().len(), 1, "nothing that waited reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sending_too_fast_is_told_once_and_not_read_for_the_minute() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__GUEST_MESSAGES_PER_MINUTE", "2");
    gw.start().await;
    gw.llm.set_fallback(switchboard_fakes::Fallback::Echo);
    for n in 1..=5 {
        gw.fake.dm("42", &format!("spam {n}")).await;
    }
    gw.wait_text("42", "faster than I can take them").await;
    gw.fake.dm("7", "the admin is not limited").await;
    gw.wait_text("7", "echo: the admin is not limited").await;
    let texts = gw.fake.texts_in("42");
    assert_eq!(texts.iter().filter(|t| t.contains("faster than I can take them")).count(), 1, "{texts:?}");
    let read: Vec<String> = gw
        .llm
        .requests()
        .iter()
        .map(|r| r.all_text())
        .filter(|t| t.contains("spam 3") || t.contains("spam 5"))
        .collect();
    assert!(read.is_empty(), "messages over the limit reached the model");
}

/// A gateway with one place for turns (and `busy` for the fake channel), that
/// place held by chat 41's turn until the gate opens ("first chat answered").
async fn the_only_place_held(busy: &str) -> (Gw, Gate) {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_TURNS", "1");
    gw.set("SWITCHBOARD_FAKE__BUSY", busy);
    gw.start().await;
    let gate = Gate::new();
    gw.llm.push(Reply::text("first chat answered").gated(&gate));
    gw.fake.dm("41", "hello").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    (gw, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_beyond_the_limit_wait_in_line_and_one_waiting_for_approval_does_not_count() {
    // One turn runs; another chat's waits for it before it reaches the model.
    let (gw, gate) = the_only_place_held("collect").await;
    gw.llm.push(Reply::text("second chat answered"));
    gw.fake.dm("42", "hello too").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(gw.llm.requests().len(), 1, "the second turn waits in line");
    gate.open();
    gw.wait_text("41", "first chat answered").await;
    gw.wait_text("42", "second chat answered").await;

    // A turn waiting for a person's approval gives its place to the next.
    gw.llm.push(Reply::tool_call("Write", serde_json::json!({"path": "n.txt", "content": "x"})));
    gw.fake.dm("7", "write a note").await;
    let prompt = gw.wait_prompt("7").await;
    gw.llm.push(Reply::text("answered while the other waits"));
    gw.fake.dm("43", "anyone there?").await;
    gw.wait_text("43", "answered while the other waits").await;
    // Decided, it takes a place again and finishes.
    gw.llm.push(Reply::text("Written."));
    gw.fake.press(&prompt, "7", "Allow once").await;
    gw.wait_text("7", "Written.").await;
    assert_eq!(std::fs::read_to_string(gw.workdir().join("n.txt")).unwrap(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waiting_for_the_platform_leaves_its_place_to_the_next_turn() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_TURNS", "1");
    gw.start().await;
    // The platform tells the bot to wait a minute before it sends in chat 41
    // again: the first chat's reply waits that long after its agent is done.
    gw.fake.fail_next(Op::Send, ChannelError::RateLimited(Duration::from_secs(60)));
    gw.llm.push(Reply::text("first chat answered"));
    gw.fake.dm("41", "hello").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    let refused = tokio::time::Instant::now() + WAIT;
    while gw.fake.calls_of(Op::Send).is_empty() {
        assert!(tokio::time::Instant::now() < refused, "the first chat's reply was never tried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another chat's turn takes the only place meanwhile, well within the minute.
    gw.llm.push(Reply::text("second chat answered"));
    gw.fake.dm("42", "hello too").await;
    gw.wait_text("42", "second chat answered").await;
    assert_eq!(gw.llm.requests().len(), 2);
    let first = gw.fake.texts_in("41");
    assert!(!first.iter().any(|t| t.contains("first chat answered")), "still waiting for its minute: {first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_turn_waiting_in_line_for_a_place() {
    let (gw, gate) = the_only_place_held("collect").await;
    gw.fake.dm("42", "hello too").await;
    gw.wait_in_line(1).await;

    // Its sender cancels it there: it never reaches the model, and the chat is not wedged.
    gw.fake.command(gw.fake.direct("42"), ChatKind::Direct, "42", "cancel", "").await;
    gw.wait_text("42", "Cancelled.").await;
    gate.open();
    gw.wait_text("41", "first chat answered").await;
    gw.wait_in_line(0).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(gw.llm.requests().len(), 1, "the cancelled turn reached the model");
    gw.llm.push(Reply::text("second chat answered"));
    gw.fake.dm("42", "again").await;
    gw.wait_text("42", "second chat answered").await;
    let texts = gw.fake.texts_in("42");
    assert!(!texts.iter().any(|t| t.contains("finished without a reply")), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_leave_a_quarter_of_the_places_to_admins_and_users() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_TURNS", "4");
    gw.start().await;
    // Three guests (open DMs) hold three of the four places, their model calls held.
    let gate = Gate::new();
    for _ in 0..3 {
        gw.llm.push(Reply::text("a guest answered").gated(&gate));
    }
    for guest in ["41", "42", "43"] {
        gw.fake.dm(guest, "hello").await;
    }
    gw.llm.wait_for_requests(3, WAIT).await;
    // A fourth guest waits in line; the admin takes the place kept for others.
    gw.fake.dm("44", "me too").await;
    gw.wait_in_line(1).await;
    gw.llm.push(Reply::text("the admin answered"));
    gw.fake.dm("7", "status?").await;
    gw.wait_text("7", "the admin answered").await;
    assert_eq!(gw.llm.requests().len(), 4, "the fourth guest's turn waited while the admin's ran");
    gw.llm.push(Reply::text("the fourth guest answered"));
    gate.open();
    for guest in ["41", "42", "43"] {
        gw.wait_text(guest, "a guest answered").await;
    }
    gw.wait_text("44", "the fourth guest answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_leaves_a_turn_in_line_alone_and_both_messages_are_answered() {
    let (gw, gate) = the_only_place_held("interrupt").await;
    // The second chat's turn waits in line; a message behind it does not drop it.
    gw.fake.dm("7", "one").await;
    gw.wait_in_line(1).await;
    gw.fake.dm("7", "two").await;
    gw.fake.dm("7", "/status").await;
    let status = gw.wait_text("7", "Queued or running").await;
    assert!(status.text.contains("Queued or running: 2"), "{}", status.text);
    gw.llm.set_fallback(switchboard_fakes::Fallback::Echo);
    gate.open();
    gw.wait_text("41", "first chat answered").await;
    gw.wait_text("7", "echo: one").await;
    gw.wait_text("7", "two").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_turn_goes_on_at_once_even_when_every_place_is_taken() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_GATEWAY__MAX_CONCURRENT_TURNS", "1");
    gw.start().await;
    // The admin's turn asks, and gives its place to another chat's turn, held open.
    gw.llm.push(Reply::tool_call("Write", serde_json::json!({"path": "n.txt", "content": "x"})));
    gw.fake.dm("7", "write a note").await;
    let prompt = gw.wait_prompt("7").await;
    let gate = Gate::new();
    gw.llm.push(Reply::text("the other chat answered").gated(&gate));
    gw.fake.dm("41", "hello").await;
    gw.llm.wait_for_requests(2, WAIT).await;
    // Decided: its agent goes on, and its reply is not held back for a place.
    gw.llm.push(Reply::text("Written."));
    gw.fake.press(&prompt, "7", "Allow once").await;
    gw.wait_text("7", "Written.").await;
    assert_eq!(std::fs::read_to_string(gw.workdir().join("n.txt")).unwrap(), "x");
    gate.open();
    gw.wait_text("41", "the other chat answered").await;
}
