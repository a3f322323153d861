//! sendMessage / edit validation, HTML parsing, inline keyboards and callback queries.

use serde_json::{json, Value};

use super::{bot_says, fails, keyboard, ok};
use crate::telegram::FakeTelegram;

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup \
                            are exactly the same as a current content and reply markup of the message";

fn html(chat: i64, text: &str) -> Value {
    json!({"chat_id": chat, "text": text, "parse_mode": "HTML"})
}

#[tokio::test]
async fn sent_messages_come_back_as_full_message_objects() {
    let tg = FakeTelegram::start().await;
    let markup = keyboard(&[("Yes", "vote:yes"), ("No", "vote:no")]);
    let body = json!({
        "chat_id": -1002, "text": "Vote now", "message_thread_id": 5, "reply_markup": markup,
        "link_preview_options": {"is_disabled": true}, "some_future_param": 1
    });

    let message = ok(&tg, "SendMessage", body).await;

    assert!(message["message_id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(
        message["from"],
        json!({"id": 999, "is_bot": true, "first_name": "Switchboard Test Bot", "username": "switchboard_test_bot"})
    );
    assert_eq!(message["chat"]["id"], -1002);
    assert_eq!(message["chat"]["type"], "supergroup");
    assert!(message["date"].as_i64().is_some_and(|d| d > 1_600_000_000));
    assert_eq!(message["text"], "Vote now");
    assert_eq!(message["message_thread_id"], 5);
    assert_eq!(message["reply_markup"], markup);
    let sent = tg.messages_in(-1002);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_id, message["message_id"].as_i64().unwrap_or_default());
    assert_eq!((sent[0].thread_id, sent[0].text.as_str()), (Some(5), "Vote now"));
    assert_eq!(sent[0].reply_markup.as_ref(), Some(&markup));
    assert!(tg.messages_in(42).is_empty());

    let reply = json!({"chat_id": -1002, "text": "Re", "reply_parameters": {"message_id": sent[0].message_id}});
    assert_eq!(ok(&tg, "SendMessage", reply).await["reply_to_message"]["text"], "Vote now");
    assert_eq!(tg.sent()[1].reply_to, Some(sent[0].message_id));
}

#[tokio::test]
async fn text_must_be_non_empty_and_at_most_4096_utf16_units() {
    let tg = FakeTelegram::start().await;
    let empty = fails(&tg, "SendMessage", json!({"chat_id": 42, "text": ""})).await;
    assert_eq!(empty, (400, "Bad Request: message text is empty".to_owned()));
    let tags_only = fails(&tg, "SendMessage", html(42, "<b></b>")).await;
    assert_eq!(tags_only.1, "Bad Request: message text is empty");

    let too_long = fails(&tg, "SendMessage", json!({"chat_id": 42, "text": "a".repeat(4097)})).await;
    assert_eq!(too_long, (400, "Bad Request: message is too long".to_owned()));
    ok(&tg, "SendMessage", json!({"chat_id": 42, "text": "a".repeat(4096)})).await;
    // 2049 emoji are 2049 chars but 4098 UTF-16 code units.
    let emoji = fails(&tg, "SendMessage", json!({"chat_id": 42, "text": "😀".repeat(2049)})).await;
    assert_eq!(emoji.1, "Bad Request: message is too long");

    // Markup makes the raw text long, but only the parsed text counts.
    let bold = format!("<b><i>{}</i></b>", "b".repeat(4090));
    let escaped = "&lt;&amp;&gt;".repeat(1300);
    assert!(bold.len() > 4096 && escaped.len() > 4096);
    assert_eq!(ok(&tg, "SendMessage", html(42, &bold)).await["text"].as_str().map(str::len), Some(4090));
    assert_eq!(ok(&tg, "SendMessage", html(42, &escaped)).await["text"].as_str().map(str::len), Some(3900));
    let long_after_parsing = format!("<i>{}</i>", "i".repeat(4097));
    assert_eq!(fails(&tg, "SendMessage", html(42, &long_after_parsing)).await.1, "Bad Request: message is too long");
    assert_eq!(tg.sent().len(), 3);
}

#[tokio::test]
async fn bad_html_is_refused_with_a_parse_error() {
    let tg = FakeTelegram::start().await;
    let cases = [
        ("2 < 3", "Unsupported start tag"),
        ("fish & chips", "HTML entity"),
        ("<b>bold", "Can't find end tag corresponding to start tag \"b\""),
        ("<b><i>crossed</b></i>", "Unmatched end tag"),
        ("stray</i>", "Unexpected end tag"),
        ("<marquee>hi</marquee>", "Unsupported start tag \"marquee\""),
        ("<span>hidden</span>", "tg-spoiler"),
        ("<a href=\"https://x.y\">open", "Can't find end tag"),
        ("<b", "Unclosed start tag"),
    ];
    for (text, reason) in cases {
        let (status, description) = fails(&tg, "SendMessage", html(42, text)).await;
        assert_eq!(status, 400, "{text}");
        assert!(description.starts_with("Bad Request: can't parse entities: "), "{text}: {description}");
        assert!(description.contains(reason), "{text}: {description}");
    }
    assert!(tg.sent().is_empty());
    // The same text without parse_mode is fine.
    ok(&tg, "SendMessage", json!({"chat_id": 42, "text": "2 < 3 & <b>"})).await;
}

#[tokio::test]
async fn good_html_becomes_text_and_entities() {
    let tg = FakeTelegram::start().await;
    let text = "<b>bold</b> <pre><code class=\"language-rust\">fn main() {}</code></pre> &lt;tag&gt; \
                <a href=\"https://example.com/?a=1&amp;b=2\">link</a> <blockquote expandable><i>q</i></blockquote> \
                <span class=\"tg-spoiler\">s</span>&#33;";

    let message = ok(&tg, "SendMessage", html(42, text)).await;

    assert_eq!(message["text"], "bold fn main() {} <tag> link q s!");
    assert_eq!(
        message["entities"],
        json!([
            {"type": "bold", "offset": 0, "length": 4},
            {"type": "pre", "offset": 5, "length": 12, "language": "rust"},
            {"type": "text_link", "offset": 24, "length": 4, "url": "https://example.com/?a=1&b=2"},
            {"type": "expandable_blockquote", "offset": 29, "length": 1},
            {"type": "italic", "offset": 29, "length": 1},
            {"type": "spoiler", "offset": 31, "length": 1}
        ])
    );
    let sent = &tg.sent()[0];
    assert_eq!(sent.text, text, "the raw HTML is kept for assertions");
    assert_eq!(sent.plain_text, "bold fn main() {} <tag> link q s!");
    assert_eq!(sent.parse_mode.as_deref(), Some("HTML"));
}

#[tokio::test]
async fn edits_must_change_something() {
    let tg = FakeTelegram::start().await;
    let id = bot_says(&tg, 42, "hello").await;

    let same = fails(&tg, "EditMessageText", json!({"chat_id": 42, "message_id": id, "text": "hello"})).await;
    assert_eq!(same, (400, NOT_MODIFIED.to_owned()));
    let edited = ok(
        &tg,
        "EditMessageText",
        json!({"message_id": id, "chat_id": 42, "text": "<b>hello</b>", "parse_mode": "HTML"}),
    )
    .await;
    assert_eq!(edited["entities"], json!([{"type": "bold", "offset": 0, "length": 5}]));
    assert!(edited["edit_date"].as_i64().is_some());
    let again = json!({"chat_id": 42, "message_id": id, "text": "hello again"});
    assert_eq!(ok(&tg, "EditMessageText", again).await["text"], "hello again");

    let missing = fails(&tg, "EditMessageText", json!({"chat_id": 42, "message_id": 9999, "text": "x"})).await;
    assert_eq!(missing.1, "Bad Request: message to edit not found");
    let empty = fails(&tg, "EditMessageText", json!({"chat_id": 42, "message_id": id, "text": ""})).await;
    assert_eq!(empty.1, "Bad Request: message text is empty");

    let markup = keyboard(&[("Ok", "ok")]);
    ok(&tg, "EditMessageReplyMarkup", json!({"chat_id": 42, "message_id": id, "reply_markup": markup})).await;
    let unchanged = json!({"chat_id": 42, "message_id": id, "reply_markup": markup});
    assert_eq!(fails(&tg, "EditMessageReplyMarkup", unchanged).await.1, NOT_MODIFIED);
    let removed = ok(&tg, "EditMessageReplyMarkup", json!({"chat_id": 42, "message_id": id})).await;
    assert!(removed.get("reply_markup").is_none());

    assert_eq!(ok(&tg, "DeleteMessage", json!({"chat_id": 42, "message_id": id})).await, true);
    let gone = fails(&tg, "EditMessageText", json!({"chat_id": 42, "message_id": id, "text": "late"})).await;
    assert_eq!(gone.1, "Bad Request: message to edit not found");

    let sent = &tg.sent()[0];
    assert_eq!(sent.text, "hello again");
    assert_eq!(sent.edits, ["<b>hello</b>", "hello again"]);
    assert_eq!((sent.reply_markup.as_ref(), sent.deleted), (None, true));
}

#[tokio::test]
async fn callback_data_longer_than_64_bytes_is_refused() {
    let tg = FakeTelegram::start().await;
    let send = |data: String| json!({"chat_id": 42, "text": "pick", "reply_markup": keyboard(&[("x", data.as_str())])});

    let refused = fails(&tg, "SendMessage", send("d".repeat(65))).await;
    assert_eq!(refused, (400, "Bad Request: BUTTON_DATA_INVALID".to_owned()));
    // 33 two-byte characters: 33 chars but 66 bytes.
    assert_eq!(fails(&tg, "SendMessage", send("é".repeat(33))).await.1, "Bad Request: BUTTON_DATA_INVALID");
    let accepted = ok(&tg, "SendMessage", send("d".repeat(64))).await;
    assert_eq!(accepted["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "d".repeat(64));

    let id = accepted["message_id"].clone();
    let edit = json!({"chat_id": 42, "message_id": id, "text": "pick again", "reply_markup": keyboard(&[("x", "e".repeat(65).as_str())])});
    assert_eq!(fails(&tg, "EditMessageText", edit).await.1, "Bad Request: BUTTON_DATA_INVALID");
    assert_eq!(tg.sent().len(), 1);
}

#[tokio::test]
async fn clicks_become_callback_queries_that_can_be_answered_once() {
    let tg = FakeTelegram::start().await;
    let body = json!({"chat_id": 42, "text": "Continue?", "reply_markup": keyboard(&[("Yes", "go:yes")])});
    let message_id = ok(&tg, "SendMessage", body).await["message_id"].as_i64().expect("id");

    let update_id = tg.click(42, 42, message_id, "go:yes");

    let updates = ok(&tg, "GetUpdates", json!({"offset": update_id})).await;
    let query = &updates[0]["callback_query"];
    assert_eq!(updates[0]["update_id"], update_id);
    assert_eq!(query["id"], "cq-1");
    assert_eq!(query["from"]["id"], 42);
    assert_eq!(query["data"], "go:yes");
    assert!(query["chat_instance"].is_string());
    assert_eq!(query["message"]["message_id"], message_id);
    assert_eq!(query["message"]["from"]["id"], 999);
    assert_eq!(query["message"]["reply_markup"]["inline_keyboard"][0][0]["text"], "Yes");

    let answer = json!({"callback_query_id": "cq-1", "text": "Going!", "show_alert": true});
    assert_eq!(ok(&tg, "AnswerCallbackQuery", answer.clone()).await, true);
    let invalid = "Bad Request: query is too old and response timeout expired or query ID is invalid";
    assert_eq!(fails(&tg, "AnswerCallbackQuery", answer).await, (400, invalid.to_owned()));
    assert_eq!(fails(&tg, "AnswerCallbackQuery", json!({"callback_query_id": "cq-77"})).await.1, invalid);

    let answers = tg.callback_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].callback_query_id, "cq-1");
    assert_eq!(answers[0].text.as_deref(), Some("Going!"));
    assert!(answers[0].show_alert);
}
