//! Injected updates, getUpdates offsets, long polling and allowed_updates.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{bot_says, call, ok};
use crate::telegram::FakeTelegram;

#[tokio::test]
async fn dm_command_arrives_with_a_bot_command_entity() {
    let tg = FakeTelegram::start().await;
    let id = tg.send_dm(42, "/start hello");

    let updates = ok(&tg, "GetUpdates", json!({})).await;

    assert_eq!(updates.as_array().map(Vec::len), Some(1));
    let update = &updates[0];
    assert_eq!(update["update_id"], id);
    let message = &update["message"];
    assert_eq!(message["chat"], json!({"id": 42, "type": "private", "first_name": "User 42", "username": "user42"}));
    assert_eq!(message["from"]["id"], 42);
    assert_eq!(message["from"]["is_bot"], false);
    assert_eq!(message["from"]["first_name"], "User 42");
    assert_eq!(message["text"], "/start hello");
    assert_eq!(message["entities"], json!([{"type": "bot_command", "offset": 0, "length": 6}]));
    assert!(message["date"].as_i64().is_some_and(|d| d > 1_600_000_000));
    assert!(message["message_id"].as_i64().is_some_and(|m| m > 0));
}

#[tokio::test]
async fn group_mentions_and_topic_messages_look_like_telegram() {
    let tg = FakeTelegram::start().await;
    tg.send_group(-1001, 7, "😀 hey @switchboard_test_bot, help");
    tg.send_topic(-1002, 5, 8, "/ask@switchboard_test_bot why?");

    let updates = ok(&tg, "getUpdates", json!({})).await;

    let group = &updates[0]["message"];
    assert_eq!(group["chat"], json!({"id": -1001, "type": "supergroup", "title": "Chat -1001"}));
    // The emoji counts as two UTF-16 code units.
    assert_eq!(group["entities"], json!([{"type": "mention", "offset": 7, "length": 21}]));
    let topic = &updates[1]["message"];
    assert_eq!(topic["chat"]["is_forum"], true);
    assert_eq!(topic["message_thread_id"], 5);
    assert_eq!(topic["is_topic_message"], true);
    assert_eq!(topic["from"]["id"], 8);
    assert_eq!(topic["entities"], json!([{"type": "bot_command", "offset": 0, "length": 25}]));
}

#[tokio::test]
async fn offsets_confirm_and_forget_older_updates() {
    let tg = FakeTelegram::start().await;
    let first = tg.send_dm(1, "one");
    let second = tg.send_dm(1, "two");
    let third = tg.send_dm(1, "three");
    assert_eq!((second, third), (first + 1, first + 2));

    let all = ok(&tg, "GetUpdates", json!({"limit": 2})).await;
    let ids: Vec<i64> = all.as_array().into_iter().flatten().filter_map(|u| u["update_id"].as_i64()).collect();
    assert_eq!(ids, [first, second], "limit applies, oldest first");
    assert_eq!(tg.confirmed_offset(), 0, "no offset sent yet");

    let rest = ok(&tg, "GetUpdates", json!({"offset": second})).await;
    let texts: Vec<&str> =
        rest.as_array().into_iter().flatten().filter_map(|u| u["message"]["text"].as_str()).collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(tg.confirmed_offset(), second);

    let again = ok(&tg, "GetUpdates", json!({})).await;
    assert_eq!(again[0]["update_id"], second, "update {first} was forgotten");
    assert_eq!(ok(&tg, "GetUpdates", json!({"offset": third + 1})).await, json!([]));
    assert_eq!(ok(&tg, "GetWebhookInfo", json!({})).await["pending_update_count"], 0);
}

#[tokio::test]
async fn long_poll_wakes_promptly_when_an_update_is_injected() {
    let tg = FakeTelegram::start().await;
    let poller = tg.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move { ok(&poller, "GetUpdates", json!({"offset": 0, "timeout": 10})).await });

    tg.wait_until("the long poll to arrive", Duration::from_secs(5), |tg| !tg.calls_of("getUpdates").is_empty()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!poll.is_finished(), "the poll waits while there is nothing to deliver");
    let id = tg.send_dm(42, "wake up");

    let updates = tokio::time::timeout(Duration::from_secs(5), poll).await.expect("poll answered").expect("poll task");
    assert_eq!(updates[0]["update_id"], id);
    assert_eq!(updates[0]["message"]["text"], "wake up");
    assert!(started.elapsed() < Duration::from_secs(5), "woken early, not at the 10 s timeout");
}

#[tokio::test]
async fn long_poll_returns_nothing_after_its_timeout() {
    let tg = FakeTelegram::start().await;
    let started = Instant::now();

    let updates = ok(&tg, "GetUpdates", json!({"timeout": 1})).await;

    let waited = started.elapsed();
    assert_eq!(updates, json!([]));
    assert!(waited >= Duration::from_millis(950), "held for the timeout, got {waited:?}");
    assert!(waited < Duration::from_secs(4), "not much longer than the timeout, got {waited:?}");
}

#[tokio::test]
async fn allowed_updates_is_remembered_and_filters_kinds() {
    let tg = FakeTelegram::start().await;
    let dm = tg.send_dm(42, "original");
    let message_id = ok(&tg, "GetUpdates", json!({})).await[0]["message"]["message_id"].as_i64().expect("id");
    let edit = tg.edit_user_message(42, 42, message_id, "edited");
    let member = tg.push_raw_update(json!({"my_chat_member": {"chat": {"id": -5, "type": "supergroup"}}}));

    let edits = ok(&tg, "GetUpdates", json!({"allowed_updates": ["edited_message"]})).await;

    assert_eq!(tg.last_allowed_updates(), Some(vec!["edited_message".to_owned()]));
    assert_eq!(edits.as_array().map(Vec::len), Some(1));
    let edited = &edits[0]["edited_message"];
    assert_eq!(edits[0]["update_id"], edit);
    assert_eq!(edited["message_id"], message_id);
    assert_eq!(edited["text"], "edited");
    assert!(edited["edit_date"].as_i64().is_some());
    // Remembered for later calls without the parameter, like Telegram.
    assert_eq!(ok(&tg, "GetUpdates", json!({})).await[0]["update_id"], edit);

    let all = ok(&tg, "GetUpdates", json!({"allowed_updates": []})).await;
    let ids: Vec<i64> = all.as_array().into_iter().flatten().filter_map(|u| u["update_id"].as_i64()).collect();
    assert_eq!(ids, [dm, edit, member]);
    assert_eq!(all[2]["my_chat_member"]["chat"]["id"], -5, "raw updates are stored as given");
    assert_eq!(tg.last_allowed_updates(), Some(vec![]));
}

#[tokio::test]
async fn replies_to_the_bot_carry_the_bot_message() {
    let tg = FakeTelegram::start().await;
    let bot_message = bot_says(&tg, -1001, "Pick a number").await;

    let id = tg.reply_to_bot(-1001, 7, bot_message, "seven");

    let updates = ok(&tg, "GetUpdates", json!({"offset": id})).await;
    let message = &updates[0]["message"];
    assert_eq!(message["text"], "seven");
    assert_eq!(message["chat"]["id"], -1001);
    let replied = &message["reply_to_message"];
    assert_eq!(replied["message_id"], bot_message);
    assert_eq!(replied["text"], "Pick a number");
    assert_eq!(replied["from"]["id"], 999);
    assert_eq!(replied["from"]["is_bot"], true);
}

#[tokio::test]
async fn silent_polls_are_never_answered_until_turned_off() {
    let tg = FakeTelegram::start().await;
    let poller = tg.clone();
    let waiting = tokio::spawn(async move { ok(&poller, "GetUpdates", json!({"timeout": 1})).await });
    tg.wait_until("the long poll to arrive", Duration::from_secs(5), |tg| !tg.calls_of("getUpdates").is_empty()).await;
    tg.set_polls_silent(true);
    let id = tg.send_dm(42, "unheard");
    let poller = tg.clone();
    let fresh = tokio::spawn(async move { ok(&poller, "GetUpdates", json!({"timeout": 0})).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "a poll waiting when the connection went silent never answers");
    assert!(!fresh.is_finished(), "nor does a new one, not even past its timeout");
    waiting.abort();
    fresh.abort();

    tg.set_polls_silent(false);
    let updates = ok(&tg, "GetUpdates", json!({"timeout": 0})).await;
    assert_eq!(updates[0]["update_id"], id, "the update waited for the next answered poll");
}

#[tokio::test]
async fn a_second_poller_ends_the_first_with_a_conflict_and_is_counted() {
    let tg = FakeTelegram::start().await;
    let poller = tg.clone();
    let first = tokio::spawn(async move { call(&poller, "getUpdates", json!({"timeout": 10})).await });
    tg.wait_until("the first poll to wait", Duration::from_secs(5), |tg| tg.polls_active() == 1).await;
    assert_eq!(tg.concurrent_polls(), 0, "one poller is no conflict");

    let second = ok(&tg, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(second, json!([]));
    let (status, reply) = tokio::time::timeout(Duration::from_secs(5), first).await.expect("ended at once").unwrap();
    assert_eq!(status, 409, "{reply}");
    assert!(reply["description"].as_str().unwrap().contains("terminated by other getUpdates request"), "{reply}");
    assert_eq!(tg.concurrent_polls(), 1);

    // A poll whose client went away (a killed process) no longer counts.
    let poller = tg.clone();
    let gone = tokio::spawn(async move { call(&poller, "getUpdates", json!({"timeout": 10})).await });
    tg.wait_until("the poll to wait", Duration::from_secs(5), |tg| tg.polls_active() == 1).await;
    gone.abort();
    tg.wait_until("the dropped poll to end", Duration::from_secs(5), |tg| tg.polls_active() == 0).await;
    ok(&tg, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(tg.concurrent_polls(), 1, "polling after the other poller is gone is no conflict");
}
