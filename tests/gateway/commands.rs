//! Commands as data and as text, answered in each chat's arrival order.

use switchboard_channel_core::ChatKind;
use switchboard_fakes::Reply;

use crate::harness::Gw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_takes_effect_before_the_next_message_and_status_shows_every_channel() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::text("noted"));
    gw.fake.dm("7", "remember the password swordfish").await;
    gw.wait_text("7", "noted").await;
    // Delivered back to back: the second is judged only after /new took effect.
    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "new", "").await;
    gw.llm.push(Reply::text("what password?"));
    gw.fake.dm("7", "what was it?").await;
    gw.wait_text("7", "what password?").await;
    assert!(gw.fake.texts_in("7").iter().any(|t| t.starts_with("Started a new conversation")));
    assert!(!gw.llm.requests()[1].all_text().contains("swordfish"));

    // Typed as text, for platforms without slash commands.
    gw.fake.dm("7", "/status").await;
    let status = gw.wait_text("7", "Pending approvals: 0").await;
    assert!(status.text.contains("Channels: fake: fake: connected"), "{}", status.text);
    assert!(status.text.contains("Model: fake-model"), "{}", status.text);
    assert!(status.options.interaction.is_none());
    assert_eq!(gw.llm.requests().len(), 2, "commands never reach the agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_running_turn_and_denies_its_request() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::tool_call("Bash", serde_json::json!({"command": "touch ran.txt"})));
    gw.fake.dm("7", "run it").await;
    let prompt = gw.wait_prompt("7").await;
    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "cancel", "").await;
    gw.wait_text("7", "Cancelled.").await;
    let id = prompt.id.clone();
    gw.fake
        .wait_until("the prompt resolved", crate::harness::WAIT, move |f| {
            f.message_by_id(&id).is_some_and(|m| m.buttons.is_empty())
        })
        .await;
    assert!(gw.fake.message_by_id(&prompt.id).unwrap().text.contains("Cancelled with the turn"));
    assert!(!gw.workdir().join("ran.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_person_answered_or_an_admin_can_cancel_a_turn() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__ALLOWED_USERS", "8");
    gw.start().await;
    gw.llm.push(Reply::Hang);
    gw.fake.group("team", "8", "think hard", true).await;
    gw.llm.wait_for_requests(1, crate::harness::WAIT).await;
    let team = gw.fake.key("team", None);
    gw.fake.command(team.clone(), ChatKind::Group, "43", "cancel", "").await;
    let refused = gw.wait_text("team", "Only the person I am answering, or an admin").await;
    assert_eq!(refused.options.visibility, switchboard_channel_core::Visibility::Private { user: "fake:43".into() });
    gw.fake.command(team, ChatKind::Group, "8", "cancel", "").await;
    gw.wait_text("team", "Cancelled.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_settles_the_pending_request_of_the_conversation_it_leaves() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.llm.push(Reply::tool_call("Bash", serde_json::json!({"command": "touch orphan.txt"})));
    gw.fake.dm("7", "run it").await;
    let prompt = gw.wait_prompt("7").await;
    gw.fake.dm("7", "/status").await;
    gw.wait_text("7", "Pending approvals: 1").await;

    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "new", "").await;
    gw.wait_text("7", "Started a new conversation").await;
    let id = prompt.id.clone();
    gw.fake
        .wait_until("the old prompt settled", crate::harness::WAIT, move |f| {
            f.message_by_id(&id).is_some_and(|m| m.buttons.is_empty() && m.text.starts_with("Cancelled"))
        })
        .await;
    // A late press on the old buttons changes nothing.
    gw.fake.press(&prompt, "7", "Allow once").await;
    gw.fake
        .wait_until("the stale notice", crate::harness::WAIT, |f| {
            f.closed().iter().any(|c| c.notice.as_deref() == Some("This request is no longer pending."))
        })
        .await;
    assert!(!gw.workdir().join("orphan.txt").exists());
    gw.fake.dm("7", "/status").await;
    gw.wait_text("7", "Pending approvals: 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_reset_a_groups_conversation() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.fake.command(gw.fake.key("team", None), ChatKind::Group, "43", "new", "").await;
    let refused = gw.wait_text("team", "Only the people I know here").await;
    assert_eq!(refused.options.visibility, switchboard_channel_core::Visibility::Private { user: "fake:43".into() });
}
