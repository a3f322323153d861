//! Polling mode against FakeTelegram: start-up calls, update mapping, offsets and conflicts.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard_channel_core::markdown::parse;
use switchboard_channel_core::{ApprovalPrompt, Channel, ChannelError, ChatKind, SendOptions};
use switchboard_channel_telegram::{TelegramChannel, TelegramConfig};
use switchboard_fakes::FakeTelegram;

use common::{config, key, raw_post, started, wait_status, RecordingSink, WAIT};

#[tokio::test]
async fn start_signs_in_registers_commands_and_deletes_the_webhook() {
    let fake = FakeTelegram::start().await;
    // Someone left a webhook set: polling would fail with 409 until it is gone.
    let status = raw_post(
        fake.addr(),
        &format!("/bot{}/setWebhook", fake.token()),
        &[],
        r#"{"url":"https://old.example.com/hook"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(fake.webhook().is_some());

    let (channel, _sink) = started(&fake).await;
    assert_eq!(channel.bot_username().as_deref(), Some("switchboard_test_bot"));
    assert_eq!(channel.bot_id(), Some(999));
    assert_eq!(channel.name(), "telegram");
    let caps = channel.capabilities();
    assert_eq!(caps.max_message_len, 4096);
    assert_eq!(caps.length_unit.measure("😀"), 2, "measured in UTF-16 units");
    assert!(caps.can_edit && caps.buttons && caps.direct_chats && !caps.ephemeral);

    assert_eq!(
        fake.commands(),
        vec![("help".to_owned(), "Show help".to_owned()), ("new".to_owned(), "Start a new conversation".to_owned())]
    );
    assert_eq!(fake.webhook(), None, "deleteWebhook was called");
    fake.wait_until("first getUpdates", WAIT, |f| !f.calls_of("getUpdates").is_empty()).await;
    let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
    let position = |m: &str| methods.iter().position(|x| x == m).unwrap_or_else(|| panic!("{m} in {methods:?}"));
    assert!(position("getme") < position("setmycommands"));
    assert!(position("deletewebhook") < position("getupdates"), "{methods:?}");
    let deleted = &fake.calls_of("deleteWebhook")[0].params;
    assert_ne!(deleted["drop_pending_updates"], json!(true), "pending updates are kept");
    assert_eq!(
        fake.last_allowed_updates(),
        Some(vec!["message".into(), "edited_message".into(), "callback_query".into(), "my_chat_member".into()])
    );
    let poll = &fake.calls_of("getUpdates")[0].params;
    assert_eq!(poll["timeout"], json!(5));
    assert_eq!(channel.status(), "polling");

    let again = channel.start(RecordingSink::new()).await;
    assert!(matches!(again, Err(ChannelError::Rejected(ref m)) if m.contains("already started")), "{again:?}");
    channel.stop().await;
}

#[tokio::test]
async fn a_dm_is_acknowledged_only_after_the_sink_took_it() {
    let fake = FakeTelegram::start().await;
    let channel = TelegramChannel::new(config(&fake)).expect("config");
    let sink = RecordingSink::new();
    sink.refuse_next(3);
    channel.start(sink.clone()).await.expect("start");

    let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    let update = fake.send_dm(42, "hello there");
    // While the sink refuses, the update is retried and never confirmed.
    let start = Instant::now();
    while sink.attempts() < 3 {
        assert!(fake.confirmed_offset() <= update, "offset moved past an undelivered update");
        assert!(start.elapsed() < WAIT, "the update was not retried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fake.confirmed_offset() <= update);
    assert!(sink.events().is_empty());

    let (event_id, inbound) = sink.message(1).await;
    assert_eq!(event_id, format!("telegram:999:{update}"));
    assert_eq!(inbound.chat, key(42, None));
    assert_eq!(inbound.kind, ChatKind::Direct);
    assert_eq!(inbound.sender.id, "telegram:42");
    assert_eq!(inbound.sender.name, "User 42");
    assert!(!inbound.sender.is_bot);
    assert_eq!(inbound.text, "hello there");
    assert!(!inbound.mentions_bot && !inbound.reply_to_bot);
    assert!(inbound.message_id.parse::<i64>().expect("numeric id") > 0);
    assert!(inbound.timestamp + 2_000 >= before && inbound.timestamp <= before + 60_000, "{}", inbound.timestamp);

    fake.wait_until("offset confirmed", WAIT, |f| f.confirmed_offset() > update).await;
    assert_eq!(sink.attempts(), 4, "three refusals, then one delivery");
    assert_eq!(sink.events().len(), 1, "delivered exactly once");
    channel.stop().await;
}

#[tokio::test]
async fn group_mentions_replies_topics_and_commands_are_recognised() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    let group = -100500;

    fake.send_group(group, 7, "hey @switchboard_test_bot what's up");
    let (_, mention) = sink.message(1).await;
    assert_eq!(mention.kind, ChatKind::Group);
    assert_eq!(mention.chat, key(group, None));
    assert!(mention.mentions_bot && !mention.reply_to_bot);
    assert_eq!(mention.text, "hey @switchboard_test_bot what's up");

    fake.send_group(group, 7, "shouting at @SWITCHBOARD_TEST_BOT");
    assert!(sink.message(2).await.1.mentions_bot, "mentions are case-insensitive");

    fake.send_group(group, 7, "talking to @someone_else only");
    let (_, other) = sink.message(3).await;
    assert!(!other.mentions_bot && !other.reply_to_bot);

    let sent = channel.send(&key(group, None), &parse("I am the bot"), &SendOptions::default()).await.expect("send");
    let bot_message: i64 = sent.message_id.parse().expect("numeric");
    fake.reply_to_bot(group, 7, bot_message, "thanks");
    let (_, reply) = sink.message(4).await;
    assert!(reply.reply_to_bot && !reply.mentions_bot);

    fake.send_topic(-100777, 12, 8, "in a topic");
    let (_, topic) = sink.message(5).await;
    assert_eq!(topic.chat, key(-100777, Some(12)));
    assert_eq!(topic.chat.id(), "telegram:-100777/12");
    assert!(!topic.reply_to_bot, "the topic's first message is not the bot's reply");

    let in_topic =
        channel.send(&key(-100777, Some(12)), &parse("topic answer"), &SendOptions::default()).await.expect("send");
    fake.reply_to_bot(-100777, 8, in_topic.message_id.parse().expect("numeric"), "replying in the topic");
    let (_, topic_reply) = sink.message(6).await;
    assert_eq!(topic_reply.chat.thread.as_deref(), Some("12"));
    assert!(topic_reply.reply_to_bot);

    fake.send_group(group, 7, "/help@switchboard_test_bot");
    let (_, command) = sink.command(7).await;
    assert_eq!((command.name.as_str(), command.args.as_str()), ("help", ""));
    assert!(command.addressed && command.interaction.is_none());
    assert_eq!(command.kind, ChatKind::Group);

    fake.send_dm(42, "/new@Switchboard_Test_Bot fresh start");
    let (_, new) = sink.command(8).await;
    assert_eq!((new.name.as_str(), new.args.as_str()), ("new", "fresh start"));
    assert!(new.addressed);

    fake.send_group(group, 7, "/help@other_bot");
    let (_, foreign) = sink.message(9).await;
    assert_eq!(foreign.text, "/help@other_bot", "commands for other bots are left alone");
    assert!(!foreign.mentions_bot);

    fake.send_group(group, 7, "/help");
    let (_, bare) = sink.command(10).await;
    assert!(!bare.addressed, "a bare command in a group may be for any bot");
    fake.send_dm(42, "/unknown thing");
    assert_eq!(sink.message(11).await.1.text, "/unknown thing", "not a registered command");
    channel.stop().await;
}

#[tokio::test]
async fn a_click_arrives_with_its_data_and_callback_id() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    // A user's topic message makes the chat a forum, as it is on Telegram.
    fake.send_topic(-100777, 12, 42, "please build");
    sink.message(1).await;
    let prompt = ApprovalPrompt {
        text: "Run `rm -rf build`?".into(),
        buttons: vec![("Approve".into(), "ap:1:yes".into()), ("Deny".into(), "ap:1:no".into())],
        commands: Vec::new(),
    };
    let shown = channel.show_approval(&key(-100777, Some(12)), &prompt).await.expect("show");
    let update = fake.click(42, -100777, shown.message_id.parse().expect("numeric"), "ap:1:yes");

    let (event_id, click) = sink.click(2).await;
    assert_eq!(event_id, format!("telegram:999:{update}"));
    assert_eq!(click.data, "ap:1:yes");
    assert_eq!(click.interaction.handle, "cq-1");
    assert_eq!(click.message_id, shown.message_id);
    assert_eq!(click.chat, key(-100777, Some(12)), "the click keeps the topic");
    assert_eq!(click.sender.id, "telegram:42");
    channel.stop().await;
}

#[tokio::test]
async fn malformed_and_irrelevant_updates_are_skipped_without_blocking_the_next() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    let garbage = fake.push_raw_update(json!({"message": {"garbage": true}}));
    let first = fake.send_dm(42, "first");
    let (_, inbound) = sink.message(1).await;
    assert_eq!(inbound.text, "first");

    let message_id: i64 = inbound.message_id.parse().expect("numeric");
    let edit = fake.edit_user_message(42, 42, message_id, "first, edited");
    let from_bot = fake.push_raw_update(json!({"message": {
        "message_id": 9001, "date": 1_700_000_000, "chat": {"id": 42, "type": "private", "first_name": "U"},
        "from": {"id": 555, "is_bot": true, "first_name": "Other bot"}, "text": "beep"
    }}));
    let after = fake.send_dm(42, "after");
    let (_, inbound) = sink.message(2).await;
    assert_eq!(inbound.text, "after");
    assert!(garbage < first && edit < after && from_bot < after);

    fake.wait_until("all confirmed", WAIT, |f| f.confirmed_offset() > after).await;
    assert_eq!(sink.events().len(), 2, "the malformed update, the edit and the bot's message were skipped");
    channel.stop().await;
}

#[tokio::test]
async fn a_409_conflict_backs_off_shows_in_status_and_recovers() {
    let fake = FakeTelegram::start().await;
    fake.fail_next(
        "getUpdates",
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        None,
    );
    let (channel, sink) = started(&fake).await;
    let status = wait_status(&channel, "conflict", WAIT, |s| s.starts_with("conflict")).await;
    assert_eq!(status, "conflict: another process is polling this bot token (backing off)");
    let conflict_at = Instant::now();

    // No spinning: during the back-off nothing more is asked.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.calls_of("getUpdates").len(), 1, "getUpdates was retried during the back-off");

    wait_status(&channel, "polling again", WAIT, |s| s == "polling").await;
    assert!(conflict_at.elapsed() >= Duration::from_secs(2), "backed off before polling again");
    fake.send_dm(42, "still there?");
    assert_eq!(sink.message(1).await.1.text, "still there?");
    channel.stop().await;
}

#[tokio::test]
async fn stop_ends_a_pending_long_poll_promptly() {
    let fake = FakeTelegram::start().await;
    let (channel, _sink) = started(&fake).await;
    fake.wait_until("a long poll", WAIT, |f| !f.calls_of("getUpdates").is_empty()).await;
    let start = Instant::now();
    channel.stop().await;
    assert!(start.elapsed() < Duration::from_secs(2), "stop took {:?}", start.elapsed());
    assert_eq!(channel.status(), "stopped");
    let polls = fake.calls_of("getUpdates").len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls_of("getUpdates").len(), polls, "no polling after stop");
}

#[tokio::test]
async fn a_rejected_token_or_bad_url_fails_clearly_without_leaking_the_token() {
    let fake = FakeTelegram::start().await;
    let mut wrong = config(&fake);
    wrong.token = "123456:WRONG-SECRET".into();
    let channel = TelegramChannel::new(wrong).expect("config is well-formed");
    let err = channel.start(RecordingSink::new()).await.expect_err("token rejected");
    let text = err.to_string();
    assert!(matches!(err, ChannelError::Rejected(_)), "{err:?}");
    assert!(text.contains("token") && !text.contains("WRONG-SECRET"), "{text}");
    assert_eq!(channel.bot_username(), None);

    let mut bad_url = TelegramConfig::new(fake.token());
    bad_url.api_url = "127.0.0.1:8081".into();
    let err = TelegramChannel::new(bad_url).err().expect("bad api_url");
    assert!(matches!(err, ChannelError::Rejected(ref m) if m.contains("api_url")), "{err:?}");
}

#[tokio::test]
async fn a_429_on_get_updates_is_waited_out() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("getUpdates", 429, "Too Many Requests: retry after 1", Some(1));
    let (channel, sink) = started(&fake).await;
    let status = wait_status(&channel, "rate limited", WAIT, |s| s != "polling").await;
    assert_eq!(status, "error: rate limited by Telegram (retrying)");
    let limited_at = Instant::now();
    wait_status(&channel, "polling again", WAIT, |s| s == "polling").await;
    assert!(limited_at.elapsed() >= Duration::from_millis(900), "polled again before retry_after");
    fake.send_dm(42, "anyone?");
    assert_eq!(sink.message(1).await.1.text, "anyone?");
    channel.stop().await;
}

#[tokio::test]
async fn a_photo_caption_counts_as_the_text() {
    let fake = FakeTelegram::start().await;
    let (channel, sink) = started(&fake).await;
    let caption = "look @switchboard_test_bot";
    fake.push_raw_update(json!({"message": {
        "message_id": 5000, "date": 1_700_000_000,
        "chat": {"id": -100500, "type": "supergroup", "title": "Chat"},
        "from": {"id": 7, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace"},
        "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
        "caption": caption,
        "caption_entities": [{"type": "mention", "offset": 5, "length": 21}]
    }}));
    let (_, inbound) = sink.message(1).await;
    assert_eq!(inbound.text, caption);
    assert!(inbound.mentions_bot);
    assert_eq!(inbound.sender.name, "Ada Lovelace");
    assert_eq!(inbound.message_id, "5000");
    assert_eq!(inbound.timestamp, 1_700_000_000_000);
    channel.stop().await;
}

/// A sink that holds every delivery whose text is `held` until released, and
/// records the texts it took in the order it took them.
struct HoldingSink {
    held: &'static str,
    release: tokio::sync::watch::Sender<bool>,
    took: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl switchboard_channel_core::InboundSink for HoldingSink {
    async fn deliver(
        &self,
        event: switchboard_channel_core::InboundEvent,
    ) -> Result<(), switchboard_channel_core::DeliverError> {
        let switchboard_channel_core::InboundKind::Message(message) = &event.kind else { return Ok(()) };
        if message.text == self.held {
            let _ = self.release.subscribe().wait_for(|released| *released).await;
        }
        self.took.lock().unwrap().push(message.text.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_is_journaled_chat_by_chat_side_by_side_in_order_and_acknowledged_whole() {
    let fake = FakeTelegram::start().await;
    // One getUpdates batch: two chats interleaved.
    let updates: Vec<i64> = [(1, "a1"), (2, "b1"), (1, "a2"), (2, "b2"), (1, "a3")]
        .into_iter()
        .map(|(chat, text)| fake.send_dm(chat, text))
        .collect();
    let sink = std::sync::Arc::new(HoldingSink {
        held: "a1",
        release: tokio::sync::watch::channel(false).0,
        took: Default::default(),
    });
    let channel = TelegramChannel::new(config(&fake)).expect("config");
    channel.start(sink.clone()).await.expect("start");

    // Chat 1 waits on its first message; chat 2 is journaled meanwhile.
    let started = Instant::now();
    while sink.took.lock().unwrap().len() < 2 {
        assert!(started.elapsed() < WAIT, "chat 2 waited for chat 1: {:?}", sink.took.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*sink.took.lock().unwrap(), ["b1", "b2"], "chat 1's later messages wait for its first");
    assert!(fake.confirmed_offset() <= updates[0], "the batch is acknowledged only once all of it is journaled");

    sink.release.send_replace(true);
    fake.wait_until("the batch acknowledged", WAIT, |f| f.confirmed_offset() > *updates.last().unwrap()).await;
    let took = sink.took.lock().unwrap().clone();
    let chat1: Vec<&String> = took.iter().filter(|t| t.starts_with('a')).collect();
    assert_eq!(chat1, ["a1", "a2", "a3"], "each chat's messages in order: {took:?}");
    assert_eq!(took.len(), 5);
    channel.stop().await;
}
