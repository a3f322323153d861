//! Sending, editing, typing, approvals and click answers against FakeTelegram.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_channel_core::markdown::{parse, to_plain};
use switchboard_channel_core::{ApprovalPrompt, Channel, ChannelError, Interaction, SendOptions, SentRef};
use switchboard_channel_telegram::{render_html, TelegramChannel};
use switchboard_fakes::{CallbackAnswer, FakeTelegram};

use common::{config, key, started};

fn replying_to(id: &str) -> SendOptions {
    SendOptions { reply_to: Some(id.to_owned()), ..SendOptions::default() }
}

/// A channel that was never started: sending needs no getMe.
fn unstarted(fake: &FakeTelegram) -> TelegramChannel {
    TelegramChannel::new(config(fake)).expect("config")
}

#[tokio::test]
async fn send_renders_html_and_replies_inside_the_topic() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    fake.send_topic(-100777, 12, 42, "how do I build?");
    let (_, question) = sink.message(1).await;

    let part = parse("Use **cargo** and `make`:\n\n```sh\ncargo build --release\n```\n\n<not a tag> & more");
    let sent = channel.send(&question.chat, &part, &replying_to(&question.message_id)).await.expect("send");

    let messages = fake.messages_in(-100777);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.message_id.to_string(), sent.message_id);
    assert_eq!(message.text, render_html(&part));
    assert!(message.text.contains("<b>cargo</b>") && message.text.contains("<code>make</code>"));
    assert!(message.text.contains("<pre><code class=\"language-sh\">cargo build --release</code></pre>"));
    assert_eq!(message.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(message.plain_text, "Use cargo and make:\n\ncargo build --release\n\n<not a tag> & more");
    assert_eq!(message.thread_id, Some(12));
    assert_eq!(message.reply_to.map(|id| id.to_string()), Some(question.message_id.clone()));
    let params = &fake.calls_of("sendMessage")[0].params;
    assert_eq!(params["reply_parameters"]["allow_sending_without_reply"], json!(true));
    assert_eq!(params["link_preview_options"]["is_disabled"], json!(true));
    channel.stop().await;
}

#[tokio::test]
async fn a_reply_to_a_vanished_message_is_still_sent() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    let sent = channel.send(&key(42, None), &parse("late answer"), &replying_to("424242")).await.expect("send");
    let messages = fake.messages_in(42);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id.to_string(), sent.message_id);
    assert_eq!(messages[0].plain_text, "late answer");
    assert_eq!(messages[0].reply_to, None);
}

#[tokio::test]
async fn html_telegram_cannot_parse_is_resent_as_plain_text() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    fake.fail_next(
        "sendMessage",
        400,
        "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0",
        None,
    );
    let part = parse("See [the docs](https://docs.example.com) **now**");
    channel.send(&key(42, None), &part, &SendOptions::default()).await.expect("plain fallback");

    let calls = fake.calls_of("sendMessage");
    assert_eq!(calls.len(), 2, "one HTML attempt, one plain");
    assert_eq!(calls[0].params["parse_mode"], json!("HTML"));
    let messages = fake.messages_in(42);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].parse_mode, None);
    assert_eq!(messages[0].text, to_plain(&part));
    assert_eq!(messages[0].text, "See the docs (https://docs.example.com) now");
}

#[tokio::test]
async fn a_429_comes_back_at_once_as_rate_limited_for_the_outbox_to_wait_out() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", Some(2));
    let start = Instant::now();
    let err = channel.send(&key(42, None), &parse("patience"), &SendOptions::default()).await.expect_err("429");
    assert_eq!(err, ChannelError::RateLimited(Duration::from_secs(2)));
    assert!(start.elapsed() < Duration::from_secs(1), "the adapter slept on a 429");
    assert_eq!(fake.calls_of("sendMessage").len(), 1, "one attempt: retries belong to the outbox");
    channel.send(&key(42, None), &parse("patience"), &SendOptions::default()).await.expect("sent");
    assert_eq!(fake.messages_in(42).len(), 1, "sent exactly once");
}

#[tokio::test]
async fn a_network_failure_is_transient_and_tried_once() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    fake.fail_next("sendMessage", 502, "Bad Gateway", None);
    let err = channel.send(&key(42, None), &parse("x"), &SendOptions::default()).await.expect_err("502");
    assert!(matches!(err, ChannelError::Transient(_)), "{err:?}");
    assert_eq!(fake.calls_of("sendMessage").len(), 1);
}

#[tokio::test]
async fn a_bad_request_is_rejected_without_the_token_and_not_retried() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found", None);
    let err = channel.send(&key(42, None), &parse("hello"), &SendOptions::default()).await.expect_err("rejected");
    let ChannelError::Rejected(message) = &err else { panic!("expected Rejected, got {err:?}") };
    assert!(message.contains("chat not found"), "{message}");
    assert!(!message.contains("TEST-TOKEN"), "{message}");
    assert_eq!(fake.calls_of("sendMessage").len(), 1);
    assert!(fake.sent().is_empty());

    let slack_key = switchboard_channel_core::ChatKey { channel: "slack".into(), ..key(42, None) };
    assert!(matches!(
        channel.send(&slack_key, &parse("x"), &SendOptions::default()).await,
        Err(ChannelError::Rejected(_))
    ));
}

#[tokio::test]
async fn edits_replace_text_treat_no_change_as_success_and_report_rate_limits_at_once() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    let chat = key(-100500, None);
    let sent = channel.send(&chat, &parse("thinking…"), &SendOptions::default()).await.expect("send");

    channel.edit(&chat, &sent, &parse("the **answer**")).await.expect("edit");
    let message = &fake.messages_in(-100500)[0];
    assert_eq!(message.text, "the <b>answer</b>");
    assert_eq!(message.plain_text, "the answer");

    channel.edit(&chat, &sent, &parse("the **answer**")).await.expect("an identical edit is fine");
    assert_eq!(fake.messages_in(-100500)[0].edits.len(), 1);

    fake.fail_next("editMessageText", 429, "Too Many Requests: retry after 3", Some(3));
    let start = Instant::now();
    let err = channel.edit(&chat, &sent, &parse("more")).await.expect_err("rate limited");
    assert!(matches!(err, ChannelError::RateLimited(d) if d == Duration::from_secs(3)), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(1), "edit slept on a 429");

    fake.fail_next("editMessageText", 400, "Bad Request: can't parse entities: Unclosed start tag", None);
    channel.edit(&chat, &sent, &parse("final *words*")).await.expect("plain fallback");
    let message = &fake.messages_in(-100500)[0];
    assert_eq!(message.text, "final words");
    assert_eq!(message.parse_mode, None);

    let gone = SentRef { message_id: "987654".into() };
    let err = channel.edit(&chat, &gone, &parse("x")).await.expect_err("no such message");
    assert!(matches!(err, ChannelError::Rejected(ref m) if m.contains("message to edit not found")), "{err:?}");
}

#[tokio::test]
async fn typing_goes_to_the_topic_and_failures_are_returned() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    channel.typing(&key(-100777, Some(12))).await.expect("typing");
    channel.typing(&key(42, None)).await.expect("typing");
    assert_eq!(fake.chat_actions(), vec![(-100777, Some(12), "typing".into()), (42, None, "typing".into())]);

    fake.fail_next("sendChatAction", 403, "Forbidden: bot was blocked by the user", None);
    assert!(channel.typing(&key(42, None)).await.is_err());
}

#[tokio::test]
async fn approvals_show_three_buttons_and_resolving_replaces_them_with_the_outcome() {
    let fake = FakeTelegram::start().await;
    let channel = unstarted(&fake);
    let chat = key(42, None);
    let prompt = ApprovalPrompt {
        text: "Allow shell: <rm -rf build> & restart?".into(),
        buttons: vec![
            ("Approve".into(), "ap:7:once".into()),
            ("Always".into(), "ap:7:always".into()),
            ("Deny".into(), "ap:7:deny".into()),
        ],
        commands: Vec::new(),
    };
    let shown = channel.show_approval(&chat, &prompt).await.expect("show");
    let message = &fake.messages_in(42)[0];
    assert_eq!(message.message_id.to_string(), shown.message_id);
    assert_eq!(message.text, prompt.text, "sent as plain text");
    assert_eq!(message.parse_mode, None);
    assert_eq!(
        message.reply_markup,
        Some(json!({"inline_keyboard": [[
            {"text": "Approve", "callback_data": "ap:7:once"},
            {"text": "Always", "callback_data": "ap:7:always"},
            {"text": "Deny", "callback_data": "ap:7:deny"},
        ]]}))
    );

    channel.resolve_approval(&chat, &shown, "Approved once by User 42").await.expect("resolve");
    let message = &fake.messages_in(42)[0];
    assert_eq!(message.plain_text, "Approved once by User 42");
    assert_eq!(message.reply_markup, None, "the buttons are gone");
    assert_eq!(fake.message_json(42, message.message_id).expect("json").get("reply_markup"), None);
    channel.resolve_approval(&chat, &shown, "Approved once by User 42").await.expect("resolving twice is fine");

    // No outcome to show: the text stays and only the buttons go (Telegram
    // refuses an empty text). That the answer is not read is the unit tests'
    // business in `outbound.rs`; the fake answers with a message teloxide reads.
    let second = channel.show_approval(&chat, &prompt).await.expect("show");
    channel.resolve_approval(&chat, &second, " ").await.expect("resolve without words");
    let message = fake.messages_in(42).into_iter().last().expect("the second prompt");
    assert_eq!(message.message_id.to_string(), second.message_id);
    assert_eq!((message.text.as_str(), message.reply_markup), (prompt.text.as_str(), None), "text kept, buttons gone");
    assert_eq!(fake.calls_of("editMessageReplyMarkup").len(), 1);
    channel.resolve_approval(&chat, &second, "").await.expect("no buttons left to drop is fine");

    let too_long =
        ApprovalPrompt { text: "x".into(), buttons: vec![("Yes".into(), "y".repeat(65))], commands: Vec::new() };
    let err = channel.show_approval(&chat, &too_long).await.expect_err("data over 64 bytes");
    assert!(matches!(err, ChannelError::Rejected(ref m) if m.contains("64")), "{err:?}");
    assert_eq!(fake.sent().len(), 2, "nothing sent for the bad prompt");
}

#[tokio::test]
async fn a_click_is_answered_once_by_the_gateway_with_an_alert_or_silently() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    let chat = key(42, None);
    let prompt = ApprovalPrompt { text: "Go?".into(), buttons: vec![("Go".into(), "go".into())], commands: Vec::new() };
    let shown = channel.show_approval(&chat, &prompt).await.expect("show");
    let id: i64 = shown.message_id.parse().expect("numeric");
    fake.click(42, 42, id, "go");
    let (_, first) = sink.click(1).await;
    fake.click(42, 42, id, "go");
    let (_, second) = sink.click(2).await;

    channel.close_interaction(&chat, &first.interaction, Some("Approved")).await.expect("answer");
    channel.close_interaction(&chat, &second.interaction, None).await.expect("answer");
    assert_eq!(
        fake.callback_answers(),
        vec![
            CallbackAnswer { callback_query_id: "cq-1".into(), text: Some("Approved".into()), show_alert: true },
            CallbackAnswer { callback_query_id: "cq-2".into(), text: None, show_alert: false },
        ]
    );
    // A press that is no longer open (answered, or from before a restart): its
    // notice becomes a message in the chat instead of a second answer.
    channel.close_interaction(&chat, &first.interaction, Some("Too late")).await.expect("fallback");
    assert_eq!(fake.callback_answers().len(), 2);
    assert_eq!(fake.messages_in(42).last().expect("a message").plain_text, "Too late");
    let stale = Interaction { handle: "cq-unknown".into() };
    channel.close_interaction(&chat, &stale, None).await.expect("nothing to do");
    channel.stop().await;
}

#[tokio::test]
async fn a_click_the_gateway_never_answers_is_closed_by_the_adapter() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    let prompt = ApprovalPrompt { text: "Go?".into(), buttons: vec![("Go".into(), "go".into())], commands: Vec::new() };
    let shown = channel.show_approval(&key(42, None), &prompt).await.expect("show");
    fake.click(42, 42, shown.message_id.parse().expect("numeric"), "go");
    sink.click(1).await;
    let start = Instant::now();
    fake.wait_until("the adapter's own answer", Duration::from_secs(15), |f| !f.callback_answers().is_empty()).await;
    assert!(start.elapsed() >= Duration::from_secs(5), "answered before the gateway had its chance");
    assert_eq!(fake.callback_answers()[0].text, None);
    channel.stop().await;
}
