//! Webhook mode against FakeTelegram: setWebhook, secret checks, and 200 only after the sink took the update.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::json;
use switchboard_channel_core::{Channel, ChatKind};
use switchboard_channel_telegram::{Mode, TelegramChannel, SECRET_HEADER};
use switchboard_fakes::FakeTelegram;

use common::{config, key, raw_post, RecordingSink};

const SECRET: &str = "s3cret-Token_1";

/// A port that was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn webhook_mode_delivers_with_the_right_secret_only() {
    let fake = FakeTelegram::start().await;
    let listen = free_addr();
    let url = format!("http://{listen}/telegram/hook");
    let mut config = config(&fake);
    config.mode = Mode::Webhook;
    config.webhook_url = Some(url.clone());
    config.webhook_listen = Some(listen);
    config.webhook_secret = Some(SECRET.into());
    let channel = TelegramChannel::new(config).expect("config");
    let sink = RecordingSink::new();
    channel.start(sink.clone()).await.expect("start");

    assert_eq!(channel.status(), "webhook");
    assert_eq!(fake.webhook(), Some((url.clone(), Some(SECRET.to_owned()))));
    assert_eq!(
        fake.last_allowed_updates(),
        Some(vec!["message".into(), "edited_message".into(), "callback_query".into(), "my_chat_member".into()])
    );
    assert_eq!(fake.commands().len(), 2, "commands are registered in webhook mode too");
    assert!(fake.calls_of("getUpdates").is_empty(), "no polling in webhook mode");

    let update = fake.send_dm(42, "via webhook");
    assert_eq!(fake.deliver_webhook(update).await, 200);
    let (event_id, inbound) = sink.message(1).await;
    assert_eq!(event_id, format!("telegram:999:{update}"));
    assert_eq!(inbound.text, "via webhook");
    assert_eq!(inbound.chat, key(42, None));
    assert_eq!(inbound.kind, ChatKind::Direct);

    // Forged requests: wrong secret, no secret.
    let forged = json!({"update_id": 777, "message": {
        "message_id": 1, "date": 1_700_000_000, "chat": {"id": 42, "type": "private", "first_name": "U"},
        "from": {"id": 42, "is_bot": false, "first_name": "Mallory"}, "text": "forged"
    }})
    .to_string();
    assert_eq!(raw_post(listen, "/telegram/hook", &[(SECRET_HEADER, "wrong")], &forged).await, 401);
    assert_eq!(raw_post(listen, "/telegram/hook", &[], &forged).await, 401);
    assert_eq!(raw_post(listen, "/elsewhere", &[(SECRET_HEADER, SECRET)], &forged).await, 404);
    assert_eq!(sink.attempts(), 1, "nothing forged reached the sink");

    // A malformed update with the right secret is acknowledged and skipped.
    let malformed = json!({"update_id": 778, "message": {"garbage": true}}).to_string();
    assert_eq!(raw_post(listen, "/telegram/hook", &[(SECRET_HEADER, SECRET)], &malformed).await, 200);
    assert_eq!(sink.attempts(), 1);

    // 500 until the sink journals the update, so Telegram retries it.
    sink.refuse_next(1);
    let second = fake.send_group(-100500, 7, "@switchboard_test_bot again");
    assert_eq!(fake.deliver_webhook(second).await, 500);
    assert_eq!(sink.events().len(), 1);
    assert_eq!(fake.deliver_webhook(second).await, 200);
    let (_, inbound) = sink.message(2).await;
    assert!(inbound.mentions_bot);
    assert_eq!(inbound.chat, key(-100500, None));

    channel.stop().await;
    assert_eq!(channel.status(), "stopped");
    let third = fake.send_dm(42, "after stop");
    assert_eq!(fake.deliver_webhook(third).await, 0, "the listener is closed");
}

#[tokio::test]
async fn webhook_mode_without_a_secret_is_refused() {
    let fake = FakeTelegram::start().await;
    let mut config = config(&fake);
    config.mode = Mode::Webhook;
    config.webhook_url = Some("https://bot.example.com/hook".into());
    config.webhook_listen = Some(free_addr());
    let err = TelegramChannel::new(config).err().expect("no secret");
    assert!(err.to_string().contains("webhook_secret"), "{err}");
}
