//! Approvals through the SDK surface, driven by the fake LLM: the policy asks, a
//! person decides (or nobody does), and the tool runs at most once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{AgentBackend, SdkMessage, Session, SessionOptions, StopReason, TurnResult};
use switchboard::config::{LlmSettings, Settings};
use switchboard::policy::approvals::{Choice, DecideError, Decider};
use switchboard::policy::Tier;
use switchboard::store::{ApprovalState, SledStore, Store};
use switchboard_fakes::{FakeLlm, FakeToolCall, Reply};

struct Setup {
    llm: FakeLlm,
    backend: Arc<EmbeddedBackend>,
    workdir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(change: impl FnOnce(&mut Settings)) -> Setup {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let defaults = Settings::default();
    let mut settings = Settings {
        data_dir: dir.path().join("data"),
        llm: LlmSettings { base_url: llm.base_url(), model: "fake-model".into(), ..defaults.llm },
        ..defaults
    };
    settings.agent.workdir = dir.path().join("work");
    settings.policy.approvers = vec!["telegram:boss".into()];
    settings.policy.users_approve_own = true;
    change(&mut settings);
    let workdir = settings.agent.workdir.clone();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&settings.data_dir).unwrap());
    Setup { llm, backend: Arc::new(EmbeddedBackend::new(store, settings)), workdir, _dir: dir }
}

fn in_chat(chat: &str, sender: &str) -> SessionOptions {
    SessionOptions { chat: Some(chat.into()), sender: Some(sender.into()), ..Default::default() }
}

fn person(id: &str) -> Decider {
    Decider::Person { id: id.into(), tier: Tier::User }
}

fn write_call(path: &str) -> Reply {
    Reply::tool_call("Write", json!({"path": path, "content": "hello"}))
}

/// Reads the turn until it asks for approval; returns the approval id.
async fn until_approval(session: &mut Session) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), session.next()).await.expect("no approval request");
        match message {
            Some(SdkMessage::ApprovalRequest { approval_id, summary, .. }) => {
                assert!(summary.starts_with("Write: "), "{summary}");
                return approval_id;
            }
            Some(SdkMessage::Result(r)) => panic!("the turn ended without asking: {r:?}"),
            Some(_) => {}
            None => panic!("stream ended"),
        }
    }
}

async fn finish(session: &mut Session) -> (Vec<SdkMessage>, TurnResult) {
    let mut seen = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(20), session.next()).await.expect("turn hung") {
        if let SdkMessage::Result(r) = &m {
            return (seen, r.clone());
        }
        seen.push(m);
    }
    panic!("no result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_once_runs_the_tool_and_the_agent_continues() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("note.txt"));
    s.llm.push(Reply::text("Written."));
    session.send("write a note").unwrap();
    let id = until_approval(&mut session).await;
    assert!(!s.workdir.join("note.txt").exists(), "nothing runs before the decision");

    let pending = s.backend.approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    let record = &pending[0];
    assert_eq!(
        (record.state, record.chat.as_deref(), record.requester.as_deref()),
        (ApprovalState::Pending, Some("telegram:1"), Some("telegram:ada"))
    );
    assert!(record.id.starts_with("apr-") && record.id.len() >= 36, "ids are long and random: {}", record.id);

    let decided = s.backend.decide_approval(&id, &person("telegram:ada"), Choice::AllowOnce, None).await.unwrap();
    assert!(decided.waiter_woken);
    let (seen, result) = finish(&mut session).await;
    assert!(result.success, "{result:?}");
    assert_eq!(result.result.as_deref(), Some("Written."));
    assert!(seen
        .iter()
        .any(|m| matches!(m, SdkMessage::ApprovalResolved { outcome, .. } if *outcome == ApprovalState::AllowedOnce)));
    assert_eq!(std::fs::read_to_string(s.workdir.join("note.txt")).unwrap(), "hello");
    let results = s.llm.requests()[1].tool_results();
    assert!(!results[0].1.contains("denied"), "{results:?}");

    let audit = s.backend.audit_log().await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].outcome.as_str(), audit[0].actor.as_deref()), ("allowed_once", Some("telegram:ada")));
    assert_eq!(audit[0].summary, "Write: note.txt\n«hello»");

    // A decided request cannot be decided again (a stale or replayed click).
    let again = s.backend.decide_approval(&id, &person("telegram:ada"), Choice::Deny, None).await;
    assert!(matches!(again, Err(DecideError::NotPending)));
    let forged = s.backend.decide_approval("apr-forged", &person("telegram:ada"), Choice::AllowOnce, None).await;
    assert!(matches!(forged, Err(DecideError::NotPending)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_allow_here_skips_the_question_in_that_chat_only() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut here = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("a.txt"));
    s.llm.push(Reply::text("one"));
    here.send("first").unwrap();
    let id = until_approval(&mut here).await;
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::AlwaysAllowHere, None).await.unwrap();
    finish(&mut here).await;
    let audit = s.backend.audit_log().await.unwrap();
    assert_eq!((audit[0].outcome.as_str(), audit[0].chat.as_deref()), ("allowed_always", Some("telegram:1")));

    std::fs::remove_file(s.workdir.join("a.txt")).unwrap();
    s.llm.push(write_call("a.txt"));
    s.llm.push(Reply::text("two"));
    here.send("second").unwrap();
    let (seen, result) = finish(&mut here).await;
    assert!(result.success);
    assert!(!seen.iter().any(|m| matches!(m, SdkMessage::ApprovalRequest { .. })), "no question the second time");
    assert!(s.workdir.join("a.txt").exists());

    // The grant covers the path shown, not the tool.
    s.llm.push(write_call("b.txt"));
    here.send("another file").unwrap();
    let id = until_approval(&mut here).await;
    s.llm.push(Reply::text("not b"));
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::Deny, None).await.unwrap();
    finish(&mut here).await;
    assert!(!s.workdir.join("b.txt").exists());

    let mut elsewhere = s.backend.create_session(&agent.id, in_chat("telegram:2", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("c.txt"));
    elsewhere.send("third").unwrap();
    let id = until_approval(&mut elsewhere).await;
    s.llm.push(Reply::text("three"));
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::Deny, None).await.unwrap();
    finish(&mut elsewhere).await;
    assert!(!s.workdir.join("c.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_never_runs_the_tool_and_the_agent_hears_why() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("secret.txt"));
    s.llm.push(Reply::text("Understood, I won't."));
    session.send("write it").unwrap();
    let id = until_approval(&mut session).await;
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::Deny, Some("not today".into())).await.unwrap();
    let (_, result) = finish(&mut session).await;
    assert!(result.success);
    assert!(!s.workdir.join("secret.txt").exists());
    let results = s.llm.requests()[1].tool_results();
    assert!(results[0].1.contains("denied") && results[0].1.contains("not today"), "{results:?}");
    let audit = s.backend.audit_log().await.unwrap();
    assert_eq!((audit[0].outcome.as_str(), audit[0].reason.as_deref()), ("denied", Some("not today")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requester_or_an_approver_may_decide() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("x.txt"));
    s.llm.push(Reply::text("done"));
    session.send("go").unwrap();
    let id = until_approval(&mut session).await;

    let refused = s.backend.decide_approval(&id, &person("telegram:mallory"), Choice::AllowOnce, None).await;
    assert!(matches!(refused, Err(DecideError::NotEntitled)));
    let still = s.backend.approvals().await.unwrap();
    assert_eq!(still[0].state, ApprovalState::Pending, "a refused decision changes nothing");
    assert!(!s.workdir.join("x.txt").exists());

    // An approver may decide for anyone.
    s.backend.decide_approval(&id, &person("telegram:boss"), Choice::AllowOnce, None).await.unwrap();
    finish(&mut session).await;
    assert!(s.workdir.join("x.txt").exists());
    let outcomes: Vec<(String, Option<String>)> =
        s.backend.audit_log().await.unwrap().into_iter().map(|r| (r.outcome, r.actor)).collect();
    assert_eq!(
        outcomes,
        [
            ("refused".to_string(), Some("telegram:mallory".to_string())),
            ("allowed_once".to_string(), Some("telegram:boss".to_string()))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_expires_and_the_agent_is_told() {
    let s = setup(|settings| settings.policy.approval_timeout_secs = 1).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("late.txt"));
    s.llm.push(Reply::text("Nobody answered, so I did not write it."));
    session.send("write").unwrap();
    let id = until_approval(&mut session).await;
    let (seen, result) = finish(&mut session).await;
    assert!(result.success);
    assert!(seen
        .iter()
        .any(|m| matches!(m, SdkMessage::ApprovalResolved { outcome, .. } if *outcome == ApprovalState::Expired)));
    assert!(!s.workdir.join("late.txt").exists());
    assert!(s.llm.requests()[1].tool_results()[0].1.contains("timed out"));
    let late = s.backend.decide_approval(&id, &person("telegram:ada"), Choice::AllowOnce, None).await;
    assert!(matches!(late, Err(DecideError::NotPending)));
    assert_eq!(s.backend.audit_log().await.unwrap()[0].outcome, "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_denies_the_pending_request_and_ends_the_turn() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(write_call("never.txt"));
    session.send("write").unwrap();
    until_approval(&mut session).await;
    session.canceller().cancel();
    let (_, result) = finish(&mut session).await;
    assert_eq!(result.stop_reason, StopReason::Cancelled);
    assert!(!s.workdir.join("never.txt").exists());
    assert_eq!(s.backend.approvals().await.unwrap()[0].state, ApprovalState::Cancelled);
    assert_eq!(s.backend.audit_log().await.unwrap()[0].outcome, "cancelled");
    assert_eq!(s.llm.requests().len(), 1, "a cancelled turn makes no further model call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_the_same_conversation_queue_behind_a_pending_approval() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let options = in_chat("telegram:1", "telegram:ada");
    let mut first = s.backend.resume_session(&agent.id, options.clone()).await.unwrap();
    let mut second = s.backend.resume_session(&agent.id, options).await.unwrap();
    s.llm.push(write_call("q.txt"));
    first.send("write").unwrap();
    let id = until_approval(&mut first).await;

    second.send("another message").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.llm.requests().len(), 1, "the second message waits for the first turn");

    // Another conversation is not held up.
    let mut other = s.backend.create_session(&agent.id, in_chat("telegram:9", "telegram:bob")).await.unwrap();
    s.llm.push(Reply::text("other conversation"));
    other.send("hi").unwrap();
    assert_eq!(finish(&mut other).await.1.result.as_deref(), Some("other conversation"));

    s.llm.push(Reply::text("written"));
    s.llm.push(Reply::text("and the second answer"));
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::AllowOnce, None).await.unwrap();
    assert_eq!(finish(&mut first).await.1.result.as_deref(), Some("written"));
    assert_eq!(finish(&mut second).await.1.result.as_deref(), Some("and the second answer"));
    assert!(s.workdir.join("q.txt").exists());
    assert!(s.llm.requests().last().unwrap().all_text().contains("another message"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_user_question_creates_no_approval() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(Reply::tool_call("AskUserQuestion", json!({"questions": [{"question": "Which?", "options": []}]})));
    s.llm.push(Reply::text("Which one do you mean?"));
    session.send("pick one").unwrap();
    let (seen, result) = finish(&mut session).await;
    assert_eq!(result.result.as_deref(), Some("Which one do you mean?"));
    assert!(!seen.iter().any(|m| matches!(m, SdkMessage::ApprovalRequest { .. })));
    assert!(s.backend.approvals().await.unwrap().is_empty());
    assert!(s.backend.audit_log().await.unwrap().is_empty());
    assert!(s.llm.requests()[1].tool_results()[0].1.contains("plain text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_tool_call_id_cannot_replay_another_calls_approval() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    // A server that gives two calls in one reply the same id.
    let call = |path: &str| FakeToolCall {
        id: "dup".into(),
        name: "Write".into(),
        arguments: json!({"path": path, "content": path}).to_string(),
    };
    s.llm.push(Reply::ToolCalls { text: vec![], calls: vec![call("first.txt"), call("second.txt")] });
    s.llm.push(Reply::text("done"));
    session.send("write both").unwrap();
    let first = until_approval(&mut session).await;
    s.backend.decide_approval(&first, &person("telegram:ada"), Choice::AllowOnce, None).await.unwrap();
    // The second call is asked about on its own, with its own input.
    let second = until_approval(&mut session).await;
    assert_ne!(first, second);
    let pending = s.backend.approvals().await.unwrap();
    assert_eq!(pending.iter().find(|a| a.id == second).unwrap().summary, "Write: second.txt\n«second.txt»");
    s.backend.decide_approval(&second, &person("telegram:ada"), Choice::Deny, None).await.unwrap();
    let (_, result) = finish(&mut session).await;
    assert!(result.success);
    assert_eq!(std::fs::read_to_string(s.workdir.join("first.txt")).unwrap(), "first.txt");
    assert!(!s.workdir.join("second.txt").exists(), "the denied call did not run on the first call's approval");
    let results = s.llm.requests()[1].tool_results();
    assert_eq!(results.len(), 2);
    assert_ne!(results[0].0, results[1].0, "each call got its own id back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_allowing_a_bash_call_without_a_text_command_grants_nothing() {
    let s = setup(|_| {}).await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, in_chat("telegram:1", "telegram:ada")).await.unwrap();
    s.llm.push(Reply::tool_call("Bash", json!({"command": ["ls"]})));
    s.llm.push(Reply::tool_call("Bash", json!({"command": "touch pwned"})));
    s.llm.push(Reply::text("ok"));
    session.send("go").unwrap();
    let id = loop {
        match session.next().await {
            Some(SdkMessage::ApprovalRequest { approval_id, .. }) => break approval_id,
            Some(_) => {}
            None => panic!("no approval"),
        }
    };
    s.backend.decide_approval(&id, &person("telegram:ada"), Choice::AlwaysAllowHere, None).await.unwrap();
    // The next Bash call must still ask.
    let asked_again = loop {
        match session.next().await {
            Some(SdkMessage::ApprovalRequest { approval_id, .. }) => break Some(approval_id),
            Some(SdkMessage::Result(_)) | None => break None,
            Some(_) => {}
        }
    };
    let again = asked_again.expect("a blanket Bash grant must not exist");
    s.backend.decide_approval(&again, &person("telegram:ada"), Choice::Deny, None).await.unwrap();
    finish(&mut session).await;
    assert!(!s.workdir.join("pwned").exists());
}
