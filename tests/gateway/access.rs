//! Access, pairing and group gating, judged from the fake channel's own section.

use switchboard_channel_core::{ChatKind, Visibility};
use switchboard_fakes::Reply;

use crate::harness::Gw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_gets_a_private_pairing_code_and_an_admin_pairs_them_with_a_slash_command() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__DM_POLICY", "pairing");
    gw.start().await;
    let ack = gw.fake.dm("42", "hello?").await;
    assert!(ack.result.is_ok());
    let reply = gw.wait_text("42", "pairing code is").await;
    assert_eq!(reply.options.visibility, Visibility::Private { user: "fake:42".into() });
    assert!(reply.text.contains("switchboard pairing approve fake"), "{}", reply.text);
    assert!(gw.llm.requests().is_empty(), "a stranger's text never reaches the agent");
    let code: String = reply.text.split("pairing code is ").nth(1).unwrap().chars().take(8).collect();

    gw.fake.command(gw.fake.direct("43"), ChatKind::Direct, "43", "pair", &code).await;
    let refused = gw.wait_text("43", "pairing code is").await;
    assert!(refused.options.interaction.is_some(), "a refused slash command is still answered");

    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "pair", &code).await;
    let paired = gw.wait_text("7", "Paired").await;
    assert!(paired.options.interaction.is_some(), "the answer goes to the command's interaction");
    gw.llm.push(Reply::text("Welcome!"));
    gw.fake.dm("42", "hello again").await;
    gw.wait_text("42", "Welcome!").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_answer_when_addressed_record_when_listening_and_ignore_strangers() {
    let mut gw = Gw::new().await;
    gw.set("SWITCHBOARD_FAKE__DM_POLICY", "allowlist");
    gw.set("SWITCHBOARD_FAKE__ALLOWED_USERS", "42");
    gw.set("SWITCHBOARD_FAKE__ALLOWED_GROUPS", "team,quiet");
    gw.set("SWITCHBOARD_FAKE__GROUPS__QUIET", "listen");
    gw.start().await;

    gw.fake.group("team", "42", "just chatting among ourselves", false).await;
    gw.llm.push(Reply::text("You called?"));
    gw.fake.group("team", "42", "are you there?", true).await;
    let answer = gw.wait_text("team", "You called?").await;
    assert!(answer.options.reply_to.is_some(), "in groups the bot replies to the message");
    let requests = gw.llm.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].all_text().contains("just chatting"), "unaddressed text stays out");

    // A group nobody listed: even a person allowed in DMs is not answered there.
    gw.fake.group("elsewhere", "42", "hello?", true).await;
    // A listen group: recorded, never answered; an addressed command is answered.
    gw.fake.group("quiet", "43", "the deploy is on friday", false).await;
    gw.fake.command(gw.fake.key("quiet", None), ChatKind::Group, "43", "status", "").await;
    gw.wait_text("quiet", "Pending approvals: 0").await;
    assert_eq!(gw.fake.messages_in("quiet").len(), 1, "only the command was answered");
    assert!(gw.fake.messages_in("elsewhere").is_empty());
    assert_eq!(gw.llm.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_only_commands_are_refused_privately_and_whoami_is_private() {
    let mut gw = Gw::new().await;
    gw.start().await;
    gw.fake.command(gw.fake.key("team", None), ChatKind::Group, "42", "model", "bigger").await;
    let refused = gw.wait_text("team", "Only an admin can do that.").await;
    assert_eq!(refused.options.visibility, Visibility::Private { user: "fake:42".into() });
    gw.fake.command(gw.fake.key("team", None), ChatKind::Group, "7", "model", "bigger").await;
    let set = gw.wait_text("team", "Model set to bigger.").await;
    assert_eq!(set.options.visibility, Visibility::Public);
    gw.fake.command(gw.fake.direct("7"), ChatKind::Direct, "7", "whoami", "").await;
    let me = gw.wait_text("7", "You are User 7 (fake:7). Role: admin.").await;
    assert_eq!(me.options.visibility, Visibility::Private { user: "fake:7".into() });
}
