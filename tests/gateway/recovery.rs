//! Simulated crashes: the daemon's runtime dropped mid-flight, then a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;
use switchboard_fakes::channel::Op;
use switchboard_fakes::Reply;

use crate::harness::{Gw, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_flight_at_a_crash_is_answered_once_after_the_restart() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::Hang);
    gw.fake.dm("7", "important question").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.crash();

    gw.llm.push(Reply::text("The answer, exactly once."));
    gw.start().await;
    gw.wait_text("7", "exactly once").await;
    assert_eq!(gw.count_settled("7", "exactly once").await, 1);
    let last = gw.llm.requests().pop().unwrap();
    let asked = last.messages().iter().filter(|m| m["content"] == "important question").count();
    assert_eq!(asked, 1, "the replayed message is in the history once");
}

/// A runtime going down drops every task but the one a worker thread is in the
/// middle of, which goes on for a moment: the gateway's side of a turn can find
/// that the agent's side ended without a result. It leaves the message to the
/// restart, as a crash does, instead of answering it for good with "Something
/// went wrong" (what failed the test above once in CI, in a first attempt; here
/// in a replayed one, where the test can hold the gateway's side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_cut_off_from_its_agent_by_a_crash_leaves_its_message_to_the_restart() {
    let mut gw = Gw::new().await;
    gw.start().await;
    // Cut off once already: its turn after the restart is a replay, whose
    // gateway side reads the message's journal record (an attempt before may
    // have streamed its reply), which a first attempt does not.
    gw.llm.push(Reply::Hang);
    gw.fake.dm("7", "important question").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.crash();
    gw.llm.push(Reply::Hang);
    // Held on its worker thread where the gateway begins to show the turn (that
    // read) while the agent calls the model on the other worker (the agent's
    // task can move there: spawning the typing indicator after it pushed it out
    // of the held worker's own next-task slot).
    let hold = Hold::default();
    gw.before_read_from_start(hold.first_read_of("journal"));
    gw.start().await;
    gw.llm.wait_for_requests(2, WAIT).await;
    hold.wait_held();
    gw.crash_around_one_task().await;
    hold.release();

    gw.llm.push(Reply::text("The answer, exactly once."));
    gw.start().await;
    gw.wait_text("7", "exactly once").await;
    assert_eq!(gw.count_settled("7", "exactly once").await, 1);
    let texts = gw.fake.texts_in("7");
    assert!(!texts.iter().any(|t| t.contains("went wrong")), "no failure told: {texts:?}");
}

/// Holds the first reader of a space's record until released (a thread blocked
/// where it reads, as a slow disk or a preempted thread would hold it).
#[derive(Default, Clone)]
struct Hold {
    state: Arc<(Mutex<Held>, Condvar)>,
}

#[derive(Default)]
struct Held {
    reader_held: bool,
    released: bool,
}

impl Hold {
    /// A store hook that holds the first read in `space` made by async code
    /// (later ones pass, and so do reads of the store's own thread, such as the
    /// replay's at a start).
    fn first_read_of(&self, space: &'static str) -> switchboard::store::ReadHook {
        let hold = self.clone();
        let fired = Arc::new(AtomicBool::new(false));
        Arc::new(move |read: &str, _key: &str| {
            let on_store_thread = std::thread::current().name() == Some("store");
            if read != space || on_store_thread || fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let (state, changed) = &*hold.state;
            let mut state = state.lock().unwrap();
            state.reader_held = true;
            changed.notify_all();
            // Let go after WAIT at the latest, so a failing test cannot hang.
            let _ = changed.wait_timeout_while(state, WAIT, |s| !s.released).unwrap();
        })
    }

    fn wait_held(&self) {
        let (state, changed) = &*self.state;
        let state = state.lock().unwrap();
        let (state, _) = changed.wait_timeout_while(state, WAIT, |s| !s.reader_held).unwrap();
        assert!(state.reader_held, "nothing read the journal");
    }

    fn release(&self) {
        let (state, changed) = &*self.state;
        state.lock().unwrap().released = true;
        changed.notify_all();
    }
}

/// Messages collected behind a turn were answered together, the reply streamed into
/// a message and recorded in the transcript, and the daemon died before it stored
/// the reply for sending (the chaos test's find): after the restart that message
/// is finished, not sent a second time beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_messages_whose_streamed_reply_was_recorded_but_not_stored_get_that_message_finished() {
    let mut gw = Gw::new().await;
    gw.start().await;
    let gate = switchboard_fakes::Gate::new();
    gw.llm.push(Reply::text("first answered").gated(&gate));
    gw.fake.dm("42", "first").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.fake.dm("42", "second").await;
    gw.fake.dm("42", "third").await;
    // The batch's reply is shown before it ends, and the first edit of it never
    // returns: the turn cannot get past it, while the agent finishes and records
    // the reply. Each step waits for the one before as the daemon did it, not as
    // a clock spaces the chunks (under load, chunks spaced at the fake arrived
    // bunched, within one edit interval, and no edit came before the reply was
    // stored). The chunk delay, above the fake channel's 300 ms edit interval, is
    // a lower bound on the time from one step to the next chunk, which is all
    // the pace asks.
    let (shown, edited) = (switchboard_fakes::Gate::new(), switchboard_fakes::Gate::new());
    gw.llm.set_chunk_delay(Duration::from_millis(400));
    gw.llm.push(
        Reply::chunks(["together: ", "both ", "answered ", "in one reply"])
            .held_after(1, &shown)
            .held_after(2, &edited),
    );
    gate.open();
    // (The preview needs the first chunk to reach the stream at least one edit
    // interval after the turn began: it comes 400 ms after the model's answer
    // begins, and nothing else can show it once the stream is held.)
    gw.fake.wait_until("the preview", WAIT, |f| f.texts_in("42").iter().any(|t| t.starts_with("together"))).await;
    // Only now: the first reply is sent by then (it may have been shown and
    // then edited, had the chat been slow to take the messages above).
    gw.fake.lose_next_answer(Op::Edit);
    shown.open();
    gw.fake
        .wait_until("the hanging edit", WAIT, |f| {
            f.calls_of(Op::Edit).iter().any(|c| c.text.as_deref().is_some_and(|t| t.starts_with("together")))
        })
        .await;
    edited.open();
    gw.wait_transcript("in one reply").await;
    // The collected reply's item, not any other: one CI run under load found one
    // item in the outbox here (not reproduced; which one was not recorded).
    let outbox = gw.records_as_text("outbox");
    assert!(
        outbox.iter().all(|(_, item)| !item.contains("together")),
        "the crash comes before the reply is stored for sending: {outbox:?}"
    );
    if !outbox.is_empty() {
        eprintln!("in the outbox before the crash: {outbox:?}");
    }
    gw.crash();

    gw.start().await;
    gw.wait_text("42", "in one reply").await;
    assert_eq!(gw.count_settled("42", "together").await, 1, "sent once: {:?}", gw.fake.texts_in("42"));
    let replies: Vec<String> = gw.fake.texts_in("42").into_iter().filter(|t| t.contains("together")).collect();
    assert_eq!(
        replies,
        ["together: both answered in one reply"],
        "one message, finished: {:?}",
        gw.fake.texts_in("42")
    );
    assert_eq!(gw.llm.requests().len(), 2, "the recorded reply is not asked for again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_pending_at_a_crash_is_decided_with_approve_after_the_restart() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::tool_call("Bash", json!({"command": "echo ran >> count.txt"})));
    gw.fake.dm("7", "count once").await;
    let prompt = gw.wait_prompt("7").await;
    // Crash after the prompt is remembered (the case of one shown but not yet
    // remembered is the test below): where it was asked, and the shown copy.
    gw.wait_records("approval-prompts", 2).await;
    gw.crash();

    gw.start().await;
    gw.llm.push(Reply::text("Counted."));
    gw.fake.dm("7", "/approve").await;
    gw.wait_text("7", "Counted.").await;
    let count = std::fs::read_to_string(gw.workdir().join("count.txt")).unwrap();
    assert_eq!(count, "ran\n", "the tool ran exactly once");
    let id = prompt.id.clone();
    gw.fake
        .wait_until("the old prompt resolved", WAIT, move |f| {
            f.message_by_id(&id).is_some_and(|m| m.text == "Allowed once by User 7." && m.buttons.is_empty())
        })
        .await;
    assert_eq!(gw.count_settled("7", "Counted.").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_expired_while_the_daemon_was_down_loses_its_buttons_at_start() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_POLICY__APPROVAL_TIMEOUT_SECS", "5");
    gw.start().await;
    gw.llm.push(Reply::tool_call("Bash", json!({"command": "touch late.txt"})));
    gw.fake.dm("7", "do it").await;
    let prompt = gw.wait_prompt("7").await;
    gw.wait_records("approval-prompts", 2).await;
    gw.crash();
    tokio::time::sleep(Duration::from_millis(5200)).await;

    gw.start().await;
    let id = prompt.id.clone();
    gw.fake
        .wait_until("the expired prompt resolved", WAIT, move |f| {
            f.message_by_id(&id).is_some_and(|m| m.buttons.is_empty() && m.text.starts_with("Expired"))
        })
        .await;
    assert!(!gw.workdir().join("late.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_shown_but_never_recorded_before_a_crash_shows_its_end_when_pressed() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_POLICY__APPROVAL_TIMEOUT_SECS", "5");
    gw.start().await;
    // The prompt reaches the chat, but the crash comes before the daemon hears back.
    gw.fake.lose_next_answer(Op::ShowApproval);
    gw.llm.push(Reply::tool_call("Bash", json!({"command": "touch late.txt"})));
    gw.fake.dm("7", "do it").await;
    let prompt = gw.wait_prompt("7").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.crash();
    tokio::time::sleep(Duration::from_millis(5200)).await;

    // It expired while the daemon was down; nothing knew of this message to update.
    gw.start().await;
    gw.fake.press(&prompt, "7", "Allow once").await;
    let id = prompt.id.clone();
    gw.fake
        .wait_until("the pressed prompt resolved", WAIT, move |f| {
            f.message_by_id(&id).is_some_and(|m| m.buttons.is_empty() && m.text.starts_with("Expired"))
        })
        .await;
    assert!(!gw.workdir().join("late.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_channel_no_longer_configured_are_dropped_once_not_replayed_forever() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::Hang);
    gw.fake.dm("7", "asked just before the channel was removed").await;
    gw.llm.wait_for_requests(1, WAIT).await;
    gw.crash();

    // A run without the fake channel (Telegram only) finishes the event as unanswerable.
    let telegram = switchboard_fakes::FakeTelegram::start().await;
    gw.with_telegram(&telegram);
    gw.unset("SWITCHBOARD_FAKE__INSTANCE");
    gw.start().await;
    gw.stop().await;

    // Back with the fake channel: nothing is replayed.
    gw.set("SWITCHBOARD_FAKE__INSTANCE", &gw.fake.register());
    gw.start().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gw.llm.requests().len(), 1, "the dropped event was not replayed");
    assert!(gw.fake.messages_in("7").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_the_platform_refused_waits_in_the_outbox_across_a_crash_and_is_shown_once() {
    let mut gw = Gw::new().await;
    gw.start().await;
    // One whole delivery round fails: the prompt stays stored, like any reply.
    for _ in 0..5 {
        gw.fake.fail_next(Op::ShowApproval, switchboard_channel_core::ChannelError::Transient("down".into()));
    }
    gw.llm.push(Reply::tool_call("Write", json!({"path": "kept.txt", "content": "kept"})));
    gw.fake.dm("7", "write it down").await;
    gw.wait_records("outbox", 1).await;
    let started = std::time::Instant::now();
    while gw.fake.calls_of(Op::ShowApproval).len() < 5 {
        assert!(started.elapsed() < WAIT, "the round never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.crash();
    assert!(gw.fake.messages_in("7").iter().all(|m| m.buttons.is_empty()), "nothing was shown before the crash");

    gw.llm.push(Reply::text("Kept and written."));
    gw.start().await;
    let prompt = gw.wait_prompt("7").await;
    gw.fake.press(&prompt, "7", "Allow once").await;
    gw.wait_text("7", "Kept and written.").await;
    let shown = gw.fake.messages_in("7").iter().filter(|m| m.edits.iter().any(|e| e.contains("kept.txt"))).count();
    let prompts = gw.fake.calls_of(Op::ShowApproval).len();
    assert_eq!(
        prompts, 6,
        "five refused before the crash, one shown after it (the replayed turn asked no second time)"
    );
    assert_eq!(shown, 1, "one prompt in the chat, resolved: {:?}", gw.fake.messages_in("7"));
    assert_eq!(std::fs::read_to_string(gw.workdir().join("kept.txt")).unwrap(), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_still_in_the_outbox_when_its_request_ends_is_never_shown() {
    let mut gw = Gw::new().await;
    gw.start().await;
    for _ in 0..5 {
        gw.fake.fail_next(Op::ShowApproval, switchboard_channel_core::ChannelError::Transient("down".into()));
    }
    gw.llm.push(Reply::tool_call("Write", json!({"path": "never.txt", "content": "no"})));
    gw.fake.dm("7", "write it").await;
    gw.wait_records("outbox", 1).await;
    // The request ends (its turn is cancelled) while the prompt waits for a retry.
    gw.fake.dm("7", "/cancel").await;
    gw.wait_text("7", "Cancelled").await;
    // The next retry round finds it ended and drops it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(gw.fake.messages_in("7").iter().all(|m| m.buttons.is_empty()), "{:?}", gw.fake.messages_in("7"));
    assert!(!gw.workdir().join("never.txt").exists());
    gw.wait_records("outbox", 0).await;
    let left = gw.fake.calls_of(Op::ShowApproval).len();
    assert!(left <= 5, "no attempt after the request ended succeeded or was made: {left}");
}
