//! End-to-end tests of the fake Telegram Bot API over real TCP connections.

mod messages;
mod updates;
mod webhook;

use std::time::Duration;

use serde_json::{json, Value};

use super::FakeTelegram;
use crate::test_client::{post_json, send, HttpResponse};

/// Upper bound for any single HTTP exchange in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

async fn bounded(what: &str, exchange: impl std::future::Future<Output = HttpResponse>) -> HttpResponse {
    match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
        Ok(response) => response,
        Err(_) => panic!("{what}: no response within {CALL_TIMEOUT:?}"),
    }
}

/// `POST /bot{token}/{method}` with a JSON body, like teloxide; returns status and parsed body.
async fn call(tg: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let path = format!("/bot{}/{method}", tg.token());
    let response = bounded(method, post_json(tg.addr(), &path, &body)).await;
    (response.status, response.json())
}

/// A call that must succeed; returns `result`.
async fn ok(tg: &FakeTelegram, method: &str, body: Value) -> Value {
    let (status, reply) = call(tg, method, body).await;
    assert_eq!(status, 200, "{method} failed: {reply}");
    assert_eq!(reply["ok"], true, "{method}: {reply}");
    reply["result"].clone()
}

/// A call that must fail; returns `(status, description)`.
async fn fails(tg: &FakeTelegram, method: &str, body: Value) -> (u16, String) {
    let (status, reply) = call(tg, method, body).await;
    assert_eq!(reply["ok"], false, "{method} should fail: {reply}");
    assert_eq!(reply["error_code"], status, "error_code mirrors the HTTP status: {reply}");
    (status, reply["description"].as_str().unwrap_or_default().to_owned())
}

/// Sends a plain message from the bot and returns its id.
async fn bot_says(tg: &FakeTelegram, chat: i64, text: &str) -> i64 {
    let message = ok(tg, "SendMessage", json!({"chat_id": chat, "text": text})).await;
    message["message_id"].as_i64().expect("message_id")
}

fn keyboard(buttons: &[(&str, &str)]) -> Value {
    let row: Vec<Value> = buttons.iter().map(|(text, data)| json!({"text": text, "callback_data": data})).collect();
    json!({"inline_keyboard": [row]})
}

#[tokio::test]
async fn get_me_describes_the_bot() {
    let tg = FakeTelegram::start().await;
    assert!(tg.api_url().starts_with("http://127.0.0.1:"));

    let me = ok(&tg, "GetMe", json!({})).await;

    assert_eq!(me["id"], 999);
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["username"], "switchboard_test_bot");
    assert_eq!(me["first_name"], "Switchboard Test Bot");
    assert_eq!(me["can_join_groups"], true);
    assert_eq!(me["has_main_web_app"], false);
    assert_eq!(tg.bot_username(), "switchboard_test_bot");
    assert_eq!(tg.token(), "123456:TEST-TOKEN");
}

#[tokio::test]
async fn method_names_are_case_insensitive_and_bad_tokens_or_methods_are_refused() {
    let tg = FakeTelegram::start().await;
    for name in ["getMe", "getme", "GETME"] {
        assert_eq!(ok(&tg, name, json!({})).await["id"], 999, "{name}");
    }

    let response = bounded("bad token", post_json(tg.addr(), "/bot123456:WRONG/GetMe", &json!({}))).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json(), json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));

    let (status, reply) = call(&tg, "FlyToTheMoon", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(reply, json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}));

    let methods: Vec<String> = tg.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["getme", "getme", "getme", "getme", "flytothemoon"]);
}

#[tokio::test]
async fn form_and_query_parameters_are_understood() {
    let tg = FakeTelegram::start().await;
    let markup = keyboard(&[("Yes", "yes")]).to_string();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("text", "[not json] via form")
        .append_pair("reply_markup", &markup)
        .finish();
    let path = format!("/bot{}/sendMessage?chat_id=42", tg.token());
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let response = bounded("form", send(tg.addr(), "POST", &path, &headers, &form)).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let message = &response.json()["result"];
    assert_eq!(message["chat"]["id"], 42);
    assert_eq!(message["text"], "[not json] via form");
    assert_eq!(message["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "yes");
    let call = tg.calls().pop().expect("recorded call");
    assert_eq!(call.method, "sendmessage");
    assert_eq!(call.params["chat_id"], "42");
}

#[tokio::test]
async fn fail_next_takes_precedence_once_and_carries_retry_after() {
    let tg = FakeTelegram::start().await;
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", Some(3));

    let (status, reply) = call(&tg, "SendMessage", json!({"chat_id": 42, "text": "hi"})).await;

    assert_eq!(status, 429);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error_code"], 429);
    assert_eq!(reply["description"], "Too Many Requests: retry after 3");
    assert_eq!(reply["parameters"], json!({"retry_after": 3}));
    assert!(tg.sent().is_empty(), "a failed call sends nothing");

    // Once only; and it wins even over validation errors of another call.
    bot_says(&tg, 42, "hi").await;
    assert_eq!(tg.sent().len(), 1);
    tg.fail_next("SENDMESSAGE", 502, "Bad Gateway", None);
    let (status, reply) = call(&tg, "sendMessage", json!({"chat_id": 42, "text": ""})).await;
    assert_eq!((status, reply["description"].as_str()), (502, Some("Bad Gateway")));
    assert!(reply.get("parameters").is_none());
    assert_eq!(tg.calls_of("sendMessage").len(), 3);
}

#[tokio::test]
async fn chat_actions_and_commands_are_recorded() {
    let tg = FakeTelegram::start().await;
    let typing = json!({"chat_id": -1002, "action": "typing", "message_thread_id": 5});
    assert_eq!(ok(&tg, "SendChatAction", typing).await, true);
    let (status, description) = fails(&tg, "SendChatAction", json!({"chat_id": 1, "action": "dancing"})).await;
    assert_eq!((status, description.as_str()), (400, "Bad Request: wrong parameter action in request"));

    let commands = json!({"commands": [
        {"command": "start", "description": "Start talking"},
        {"command": "reset", "description": "Forget the conversation"}
    ]});
    assert_eq!(ok(&tg, "SetMyCommands", commands).await, true);
    let bad = json!({"commands": [{"command": "Bad-Name", "description": "x"}]});
    assert_eq!(fails(&tg, "SetMyCommands", bad).await.1, "Bad Request: BOT_COMMAND_INVALID");

    assert_eq!(tg.chat_actions(), vec![(-1002, Some(5), "typing".to_owned())]);
    let expected = [("start", "Start talking"), ("reset", "Forget the conversation")];
    let expected: Vec<(String, String)> = expected.iter().map(|(c, d)| (c.to_string(), d.to_string())).collect();
    assert_eq!(tg.commands(), expected);
    assert_eq!(ok(&tg, "GetMyCommands", json!({})).await[1]["command"], "reset");
}
