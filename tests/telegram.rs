//! The real `switchboard serve` against the fake Telegram Bot API and the fake LLM.

mod common;

use std::time::Duration;

use common::Harness;
use serde_json::json;
use switchboard_fakes::{FakeTelegram, Reply};

const USER: i64 = 42;
const OTHER: i64 = 43;
const ADMIN: i64 = 7;
const GROUP: i64 = -100500;
const WAIT: Duration = Duration::from_secs(20);

async fn setup(dm_policy: &str) -> (Harness, FakeTelegram) {
    let mut h = Harness::new().await;
    let tg = FakeTelegram::start().await;
    h.with_telegram(&tg);
    h.set("SWITCHBOARD_TELEGRAM__DM_POLICY", dm_policy);
    h.set("SWITCHBOARD_TELEGRAM__ADMINS", &ADMIN.to_string());
    (h, tg)
}

fn texts(tg: &FakeTelegram, chat: i64) -> Vec<String> {
    tg.messages_in(chat).into_iter().map(|m| m.plain_text).collect()
}

async fn wait_text(tg: &FakeTelegram, chat: i64, needle: &str) {
    let n = needle.to_string();
    tg.wait_until(&format!("a message containing {needle:?} in chat {chat}"), WAIT, move |t| {
        t.messages_in(chat).iter().any(|m| m.plain_text.contains(&n))
    })
    .await;
}

/// The newest bot message in `chat` that carries buttons.
fn prompt(tg: &FakeTelegram, chat: i64) -> switchboard_fakes::telegram::SentMessage {
    tg.messages_in(chat).into_iter().rev().find(|m| m.reply_markup.is_some()).expect("no approval prompt")
}

fn button(prompt: &switchboard_fakes::telegram::SentMessage, label: &str) -> String {
    let rows = prompt.reply_markup.as_ref().unwrap()["inline_keyboard"].as_array().unwrap().clone();
    rows.iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .find(|b| b["text"] == label)
        .and_then(|b| b["callback_data"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {label:?} button"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_gets_a_reply_and_commands_are_registered() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::text("Hello **there**!"));
    tg.send_dm(USER, "hi");
    wait_text(&tg, USER, "Hello there!").await;
    let reply = tg.messages_in(USER).pop().unwrap();
    assert!(reply.text.contains("<b>there</b>"), "rendered as Telegram HTML: {}", reply.text);
    assert_eq!(h.llm.requests()[0].last_user_text(), "hi");
    let commands: Vec<String> = tg.commands().into_iter().map(|(c, _)| c).collect();
    for c in ["start", "help", "new", "status", "cancel", "model", "approve", "deny", "whoami"] {
        assert!(commands.contains(&c.to_string()), "{c} not registered: {commands:?}");
    }
    let allowed = tg.last_allowed_updates().unwrap_or_default();
    for kind in ["message", "edited_message", "callback_query", "my_chat_member"] {
        assert!(allowed.iter().any(|a| a == kind), "{kind} missing from allowed_updates: {allowed:?}");
    }
    assert!(tg.chat_actions().iter().any(|(chat, _, action)| *chat == USER && action == "typing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_is_edited_into_one_message_at_a_paced_rate() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.set_chunk_delay(Duration::from_millis(250));
    let words: Vec<String> = (0..16).map(|i| format!("word{i} ")).collect();
    h.llm.push(Reply::chunks(words.clone()));
    tg.send_dm(USER, "stream please");
    wait_text(&tg, USER, "word15").await;
    let messages = tg.messages_in(USER);
    assert_eq!(messages.len(), 1, "one message, edited: {:?}", texts(&tg, USER));
    let message = &messages[0];
    assert_eq!(message.plain_text, words.concat().trim());
    assert!(message.edits.len() >= 2, "expected several edits, got {:?}", message.edits);
    for pair in message.edits.windows(2) {
        assert_ne!(pair[0], pair[1], "an identical edit was sent");
    }
    let edits = tg.calls_of("editmessagetext");
    for pair in edits.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(900), "edits {gap:?} apart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_longer_than_4096_is_split_into_valid_parts() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    let paragraphs: Vec<String> =
        (0..30).map(|i| format!("Paragraph {i}: {}", "lorem ipsum **dolor** sit amet ".repeat(12))).collect();
    h.llm.push(Reply::text(&paragraphs.join("\n\n")));
    tg.send_dm(USER, "write a lot");
    wait_text(&tg, USER, "Paragraph 29").await;
    let parts = texts(&tg, USER);
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for p in &parts {
        assert!(p.encode_utf16().count() <= 4096, "a part of {} units", p.encode_utf16().count());
    }
    let all = parts.join("\n\n");
    for i in 0..30 {
        assert!(all.contains(&format!("Paragraph {i}:")), "paragraph {i} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_buttons_allow_runs_deny_does_not_and_others_are_refused() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::tool_call("Write", json!({"path": "note.txt", "content": "from telegram"})));
    h.llm.push(Reply::text("Written."));
    tg.send_dm(ADMIN, "write a note");
    tg.wait_until("an approval prompt", WAIT, |t| t.messages_in(ADMIN).iter().any(|m| m.reply_markup.is_some())).await;
    let p = prompt(&tg, ADMIN);
    assert_eq!(p.plain_text, "Allow Write: note.txt\n«from telegram»?", "the content that would be written");

    // Someone else's click changes nothing.
    tg.click(OTHER, ADMIN, p.message_id, &button(&p, "Allow once"));
    tg.wait_until("the refusal alert", WAIT, |t| t.callback_answers().iter().any(|a| a.show_alert)).await;
    let refusal = tg.callback_answers().into_iter().find(|a| a.show_alert).unwrap();
    assert!(refusal.text.unwrap_or_default().contains("Only an approver"));
    assert!(!h.workdir().join("note.txt").exists());

    tg.click(ADMIN, ADMIN, p.message_id, &button(&p, "Allow once"));
    wait_text(&tg, ADMIN, "Written.").await;
    assert_eq!(std::fs::read_to_string(h.workdir().join("note.txt")).unwrap(), "from telegram");
    let resolved = tg.messages_in(ADMIN).into_iter().find(|m| m.message_id == p.message_id).unwrap();
    assert!(resolved.reply_markup.is_none(), "buttons removed");
    assert_eq!(resolved.plain_text, "Allowed once by User 7.", "the outcome names who decided");

    // A forged click is told the request is gone.
    tg.click(ADMIN, ADMIN, p.message_id, "apr:o:apr-forged");
    tg.wait_until("the stale alert", WAIT, |t| {
        t.callback_answers().iter().any(|a| a.text.as_deref() == Some("This request is no longer pending."))
    })
    .await;

    h.llm.push(Reply::tool_call("Write", json!({"path": "no.txt", "content": "x"})));
    h.llm.push(Reply::text("Fine, I did not."));
    tg.send_dm(ADMIN, "write another");
    tg.wait_until("a second prompt", WAIT, move |t| {
        t.messages_in(ADMIN).iter().filter(|m| m.reply_markup.is_some()).any(|m| m.message_id != p.message_id)
    })
    .await;
    let second = prompt(&tg, ADMIN);
    tg.click(ADMIN, ADMIN, second.message_id, &button(&second, "Deny"));
    wait_text(&tg, ADMIN, "Fine, I did not.").await;
    assert!(!h.workdir().join("no.txt").exists());
    assert!(h.llm.requests().last().unwrap().tool_results().last().unwrap().1.contains("denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_user_question_never_shows_a_prompt() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::tool_call("AskUserQuestion", json!({"questions": [{"question": "Tea?", "options": []}]})));
    h.llm.push(Reply::text("Would you like tea or coffee?"));
    tg.send_dm(USER, "drink?");
    wait_text(&tg, USER, "tea or coffee").await;
    assert!(tg.messages_in(USER).iter().all(|m| m.reply_markup.is_none()));
    assert!(h.llm.requests()[1].tool_results()[0].1.contains("plain text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_answer_mentions_and_replies_to_the_bot_only() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    tg.send_group(GROUP, USER, "just chatting among ourselves");
    h.llm.push(Reply::text("You called?"));
    tg.send_group(GROUP, USER, &format!("@{} are you there?", tg.bot_username()));
    wait_text(&tg, GROUP, "You called?").await;
    let reqs = h.llm.requests();
    assert_eq!(reqs.len(), 1, "the unaddressed message did not reach the agent");
    assert!(reqs[0].last_user_text().ends_with("are you there?</message>"), "{}", reqs[0].last_user_text());
    assert!(!reqs[0].all_text().contains("just chatting"));
    let answer = tg.messages_in(GROUP).pop().unwrap();
    assert!(answer.reply_to.is_some(), "in groups the bot replies to the message");

    h.llm.push(Reply::text("Yes, still here."));
    tg.reply_to_bot(GROUP, USER, answer.message_id, "and now?");
    wait_text(&tg, GROUP, "Yes, still here.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forum_topics_are_separate_conversations() {
    let (h, tg) = setup("open").await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Echo);
    let mut h = h;
    h.set("SWITCHBOARD_TELEGRAM__GROUP_POLICY", "open");
    let _d = h.serve(&tg).await;
    tg.send_topic(GROUP, 1, USER, "topic one secret");
    wait_text(&tg, GROUP, "topic one secret").await;
    tg.send_topic(GROUP, 2, USER, "topic two");
    wait_text(&tg, GROUP, "topic two").await;
    let reqs = h.llm.requests();
    assert!(!reqs[1].all_text().contains("topic one secret"), "topic 2 saw topic 1");
    let in_topic_two = tg.messages_in(GROUP).into_iter().find(|m| m.plain_text.contains("topic two")).unwrap();
    assert_eq!(in_topic_two.thread_id, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_lets_an_admin_approve_a_stranger() {
    let (h, tg) = setup("pairing").await;
    let _d = h.serve(&tg).await;
    tg.send_dm(USER, "hello?");
    wait_text(&tg, USER, "pairing code is").await;
    assert!(h.llm.requests().is_empty(), "a stranger's text never reaches the agent");
    let reply = texts(&tg, USER).pop().unwrap();
    let code: String = reply.split("pairing code is ").nth(1).unwrap().chars().take(8).collect();

    tg.send_dm(ADMIN, &format!("/pair {code}"));
    wait_text(&tg, ADMIN, "Paired").await;
    h.llm.push(Reply::text("Welcome!"));
    tg.send_dm(USER, "hello again");
    wait_text(&tg, USER, "Welcome!").await;

    tg.send_dm(OTHER, "/pair ABCDEFGH");
    wait_text(&tg, OTHER, "pairing code is").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_starts_a_fresh_conversation_and_status_reports() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::text("noted"));
    tg.send_dm(USER, "remember the password swordfish");
    wait_text(&tg, USER, "noted").await;
    tg.send_dm(USER, "/new");
    wait_text(&tg, USER, "Started a new conversation").await;
    h.llm.push(Reply::text("what password?"));
    tg.send_dm(USER, "what was it?");
    wait_text(&tg, USER, "what password?").await;
    assert!(!h.llm.requests()[1].all_text().contains("swordfish"));
    tg.send_dm(USER, "/status");
    wait_text(&tg, USER, "Pending approvals: 0").await;
    let status = texts(&tg, USER).pop().unwrap();
    assert!(status.contains("Model: fake-model") && status.contains("Conversation: conv-"), "{status}");
    tg.send_dm(USER, "/model other");
    wait_text(&tg, USER, "Only an admin can do that.").await;

    tg.send_dm(ADMIN, "/model bigger-model");
    wait_text(&tg, ADMIN, "Model set to bigger-model.").await;
    h.llm.push(Reply::text("on the new model"));
    tg.send_dm(ADMIN, "hello");
    wait_text(&tg, ADMIN, "on the new model").await;
    assert_eq!(h.llm.requests().last().unwrap().model(), Some("bigger-model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_pending_approval_denies_it_and_ends_the_turn() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::tool_call("Bash", json!({"command": "touch ran.txt"})));
    tg.send_dm(ADMIN, "run it");
    tg.wait_until("an approval prompt", WAIT, |t| t.messages_in(ADMIN).iter().any(|m| m.reply_markup.is_some())).await;
    let p = prompt(&tg, ADMIN);
    tg.send_dm(ADMIN, "/cancel");
    wait_text(&tg, ADMIN, "Cancelled.").await;
    tg.wait_until("the prompt updated", WAIT, move |t| {
        t.messages_in(ADMIN).iter().any(|m| m.message_id == p.message_id && m.reply_markup.is_none())
    })
    .await;
    assert!(!h.workdir().join("ran.txt").exists());
    assert_eq!(h.llm.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_flight_when_the_daemon_is_killed_is_answered_once_after_restart() {
    let (h, tg) = setup("open").await;
    let d = h.serve(&tg).await;
    h.llm.push(Reply::Hang);
    tg.send_dm(USER, "important question");
    h.llm.wait_for_requests(1, WAIT).await;
    d.kill9().await;

    h.llm.push(Reply::text("The answer, exactly once."));
    let _d = h.serve(&tg).await;
    wait_text(&tg, USER, "exactly once").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = texts(&tg, USER).into_iter().filter(|t| t.contains("exactly once")).count();
    assert_eq!(answers, 1);
    let last = h.llm.requests().pop().unwrap();
    let questions = last.messages().iter().filter(|m| m["content"] == "important question").count();
    assert_eq!(questions, 1, "the replayed message is in the history once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_malformed_updates_skipped() {
    let (h, tg) = setup("open").await;
    let d = h.serve(&tg).await;
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", Some(1));
    h.llm.push(Reply::text("after the limit"));
    tg.send_dm(USER, "hi");
    wait_text(&tg, USER, "after the limit").await;
    let sends = tg.calls_of("sendmessage");
    assert!(sends.len() >= 2);
    let gap = sends[sends.len() - 1].at.duration_since(sends[sends.len() - 2].at);
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(texts(&tg, USER).iter().filter(|t| t.contains("after the limit")).count(), 1);

    let bad = tg.push_raw_update(json!({"message": {"garbage": true}}));
    h.llm.push(Reply::text("still working"));
    tg.send_dm(USER, "next");
    wait_text(&tg, USER, "still working").await;
    let log = d.log();
    let logged = log.lines().any(|l| l.contains("skipping update") && l.contains(&format!("update_id={bad}")));
    assert!(logged, "the skipped update is logged:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deny_work_as_text_commands() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::tool_call("Write", json!({"path": "t.txt", "content": "by text"})));
    h.llm.push(Reply::text("Done by text."));
    tg.send_dm(ADMIN, "write t.txt");
    tg.wait_until("an approval prompt", WAIT, |t| t.messages_in(ADMIN).iter().any(|m| m.reply_markup.is_some())).await;
    tg.send_dm(ADMIN, "/approve");
    wait_text(&tg, ADMIN, "Done by text.").await;
    assert_eq!(std::fs::read_to_string(h.workdir().join("t.txt")).unwrap(), "by text");

    h.llm.push(Reply::tool_call("Write", json!({"path": "u.txt", "content": "x"})));
    h.llm.push(Reply::text("Not written."));
    tg.send_dm(ADMIN, "write u.txt");
    tg.wait_until("a second prompt", WAIT, |t| {
        t.messages_in(ADMIN).iter().filter(|m| m.reply_markup.is_some()).count() == 1 && t.messages_in(ADMIN).len() > 3
    })
    .await;
    tg.send_dm(ADMIN, "/deny not now");
    wait_text(&tg, ADMIN, "Not written.").await;
    assert!(!h.workdir().join("u.txt").exists());
    assert!(h.llm.requests().last().unwrap().tool_results().last().unwrap().1.contains("not now"));
    tg.send_dm(ADMIN, "/approve");
    wait_text(&tg, ADMIN, "There is no pending request here.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_model_endpoint_gets_a_short_human_reply() {
    let (mut h, tg) = setup("open").await;
    h.set("SWITCHBOARD_LLM__BASE_URL", "http://127.0.0.1:9/v1");
    h.set("SWITCHBOARD_LLM__MAX_RETRIES", "0");
    let _d = h.serve(&tg).await;
    tg.send_dm(USER, "hello?");
    wait_text(&tg, USER, "The model did not answer").await;
    let reply = texts(&tg, USER).pop().unwrap();
    assert_eq!(reply, "The model did not answer; please try again in a moment.");
    assert!(!reply.contains("127.0.0.1") && !reply.contains("error"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_reply_is_sent_after_a_restart_and_only_once() {
    let (h, tg) = setup("open").await;
    let d = h.serve(&tg).await;
    // Telegram asks for a long wait; the daemon dies while waiting.
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 60", Some(60));
    h.llm.push(Reply::text("Worth the wait."));
    tg.send_dm(USER, "hi");
    tg.wait_until("the rate-limited send", WAIT, |t| t.calls_of("sendmessage").len() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.kill9().await;
    assert!(texts(&tg, USER).is_empty());

    let _d = h.serve(&tg).await;
    wait_text(&tg, USER, "Worth the wait.").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(texts(&tg, USER), ["Worth the wait."]);
    assert_eq!(h.llm.requests().len(), 1, "the reply came from the outbox, not a second turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_checks_the_secret_and_answers() {
    let (mut h, tg) = setup("open").await;
    let port = switchboard_fakes::free_port();
    h.set("SWITCHBOARD_TELEGRAM__MODE", "webhook");
    h.set("SWITCHBOARD_TELEGRAM__WEBHOOK_URL", &format!("http://127.0.0.1:{port}/telegram/hook"));
    h.set("SWITCHBOARD_TELEGRAM__WEBHOOK_LISTEN", &format!("127.0.0.1:{port}"));
    h.set("SWITCHBOARD_TELEGRAM__WEBHOOK_SECRET", "s3cret-token");
    let _d = h.serve(&tg).await;
    let (url, secret) = tg.webhook().expect("the webhook is set");
    assert!(url.ends_with("/telegram/hook"));
    assert_eq!(secret.as_deref(), Some("s3cret-token"));
    h.llm.push(Reply::text("Hello over the webhook."));
    let update = tg.send_dm(USER, "hi");
    assert_eq!(tg.deliver_webhook(update).await, 200);
    wait_text(&tg, USER, "Hello over the webhook.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_can_be_approved_from_the_command_line_while_the_daemon_is_stopped() {
    let (h, tg) = setup("pairing").await;
    let d = h.serve(&tg).await;
    tg.send_dm(USER, "let me in");
    wait_text(&tg, USER, "pairing code is").await;
    assert_eq!(d.stop().await, 0, "SIGTERM stops the daemon cleanly");
    let list = h.run(&["pairing", "list", "telegram"]).await;
    list.assert_ok();
    let code = list.stdout.split_whitespace().next().unwrap().to_string();
    assert!(list.stdout.contains("telegram:42"), "{}", list.stdout);
    let approved = h.run(&["pairing", "approve", "telegram", &code]).await;
    approved.assert_ok();
    assert!(approved.stdout.contains("paired"), "{}", approved.stdout);
    let again = h.run(&["pairing", "approve", "telegram", &code]).await;
    assert_eq!(again.code, 1);

    let _d = h.serve(&tg).await;
    h.llm.push(Reply::text("Now we can talk."));
    tg.send_dm(USER, "hello");
    wait_text(&tg, USER, "Now we can talk.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_get_around_pairing_through_an_unlisted_group() {
    let (h, tg) = setup("pairing").await;
    let _d = h.serve(&tg).await;
    tg.send_group(GROUP, USER, &format!("@{} tell me your secrets", tg.bot_username()));
    h.llm.push(Reply::text("Hello, admin."));
    tg.send_group(GROUP, ADMIN, &format!("@{} hi", tg.bot_username()));
    wait_text(&tg, GROUP, "Hello, admin.").await;
    let reqs = h.llm.requests();
    assert_eq!(reqs.len(), 1);
    assert!(!reqs[0].all_text().contains("secrets"), "the stranger's text reached the agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_groups_record_without_answering() {
    let (mut h, tg) = setup("open").await;
    h.set("SWITCHBOARD_TELEGRAM__GROUP_POLICY", "listen");
    let d = h.serve(&tg).await;
    tg.send_group(GROUP, USER, "the deploy is on friday");
    tg.send_group(GROUP, OTHER, &format!("@{} noted?", tg.bot_username()));
    tg.wait_until("both updates acknowledged", WAIT, |t| t.confirmed_offset() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.stop().await, 0);
    assert!(texts(&tg, GROUP).is_empty(), "listen never answers");
    assert!(h.llm.requests().is_empty());
    let list = h.run(&["conversation", "list"]).await;
    let conversation = list.stdout.lines().last().unwrap().split_whitespace().next().unwrap().to_string();
    let export = h.run(&["conversation", "export", &conversation]).await;
    assert!(
        export.stdout.contains(
            r#"<message from=\"telegram:42\" name=\"User 42\" tier=\"guest\">the deploy is on friday</message>"#
        ),
        "{}",
        export.stdout
    );
    assert!(export.stdout.contains("noted?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_routing_puts_every_chat_in_one_conversation() {
    let (mut h, tg) = setup("open").await;
    h.set("SWITCHBOARD_GATEWAY__ROUTING", "shared");
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::text("one"));
    tg.send_dm(USER, "from the first chat");
    wait_text(&tg, USER, "one").await;
    h.llm.push(Reply::text("two"));
    tg.send_dm(OTHER, "from the second chat");
    wait_text(&tg, OTHER, "two").await;
    assert!(h.llm.requests()[1].all_text().contains("from the first chat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_pending_across_a_crash_still_works_from_its_old_buttons() {
    let (h, tg) = setup("open").await;
    let d = h.serve(&tg).await;
    h.llm.push(Reply::tool_call("Bash", json!({"command": "echo ran >> count.txt"})));
    tg.send_dm(ADMIN, "count once");
    tg.wait_until("an approval prompt", WAIT, |t| t.messages_in(ADMIN).iter().any(|m| m.reply_markup.is_some())).await;
    let p = prompt(&tg, ADMIN);
    d.kill9().await;

    let _d = h.serve(&tg).await;
    h.llm.push(Reply::text("Counted."));
    tg.click(ADMIN, ADMIN, p.message_id, &button(&p, "Allow once"));
    wait_text(&tg, ADMIN, "Counted.").await;
    let count = std::fs::read_to_string(h.workdir().join("count.txt")).unwrap();
    assert_eq!(count, "ran\n", "the tool ran exactly once");
    // The click's update of the old prompt and the replayed turn's reply race; wait
    // for the prompt rather than assume an order.
    tg.wait_until("the old prompt resolved", WAIT, move |t| {
        t.messages_in(ADMIN).iter().any(|m| m.message_id == p.message_id && m.plain_text == "Allowed once by User 7.")
    })
    .await;
    let open_prompts = tg.messages_in(ADMIN).into_iter().filter(|m| m.reply_markup.is_some()).count();
    assert_eq!(open_prompts, 0, "no prompt is left with buttons");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_reach_a_running_daemon() {
    let (h, tg) = setup("pairing").await;
    let _d = h.serve(&tg).await;

    // Pairing while the daemon runs.
    tg.send_dm(USER, "let me in");
    wait_text(&tg, USER, "pairing code is").await;
    let list = h.run(&["pairing", "list", "telegram"]).await;
    list.assert_ok();
    let code = list.stdout.split_whitespace().next().unwrap().to_string();
    let approved = h.run(&["pairing", "approve", "telegram", &code]).await;
    approved.assert_ok();
    assert!(approved.stdout.starts_with("paired "), "{}", approved.stdout);

    // A paired user's request waits for an approver: the user sees that, the admin
    // gets the buttons in a DM, and the operator decides from the command line.
    h.llm.push(Reply::tool_call("Write", json!({"path": "op.txt", "content": "by the operator"})));
    h.llm.push(Reply::text("Written by your leave."));
    tg.send_dm(USER, "write op.txt");
    wait_text(&tg, USER, "Waiting for an approver: Allow Write: op.txt\n«by the operator»?").await;
    tg.wait_until("the prompt in the admin's DM", WAIT, |t| {
        t.messages_in(ADMIN).iter().any(|m| m.reply_markup.is_some())
    })
    .await;
    assert!(tg.messages_in(USER).iter().all(|m| m.reply_markup.is_none()), "no buttons for the user");
    let pending = h.run(&["approvals", "list"]).await;
    pending.assert_ok();
    assert!(
        pending.stdout.contains("pending  Write: op.txt ⏎ «by the operator»  chat=telegram:42"),
        "{}",
        pending.stdout
    );
    let id = pending.stdout.split_whitespace().next().unwrap().to_string();
    let allowed = h.run(&["approvals", "allow", &id]).await;
    allowed.assert_ok();
    wait_text(&tg, USER, "Written by your leave.").await;
    assert_eq!(std::fs::read_to_string(h.workdir().join("op.txt")).unwrap(), "by the operator");
    for chat in [USER, ADMIN] {
        tg.wait_until("every copy resolved", WAIT, move |t| {
            t.messages_in(chat).iter().any(|m| m.plain_text == "Allowed once by console.")
        })
        .await;
    }
    assert!(tg.messages_in(ADMIN).iter().all(|m| m.reply_markup.is_none()), "the admin's buttons are gone");
    // `check` asks the running daemon what its store holds.
    let check = h.run(&["check"]).await;
    assert!(check.stdout.contains("largest parts of the store:"), "{}", check.stdout);
    assert!(check.stdout.contains("approvals"), "{}", check.stdout);
    let audit = h.run(&["approvals", "audit"]).await;
    assert!(audit.stdout.contains("allowed_once  Write: op.txt ⏎ «by the operator»  by=console"), "{}", audit.stdout);
    let again = h.run(&["approvals", "allow", &id]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("is not a pending approval request"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_model_reply_is_an_error_the_person_is_told_of() {
    let (h, tg) = setup("open").await;
    let _d = h.serve(&tg).await;
    h.llm.push(Reply::chunks(Vec::<String>::new()));
    tg.send_dm(USER, "say nothing");
    wait_text(&tg, USER, "The model did not answer; please try again in a moment.").await;
}
