//! The SDK surface used as a library: agents, sessions, streams, pages and
//! cancellation, against the fake OpenAI-compatible server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{
    prompt, AgentBackend, AgentError, CreateAgentOptions, PageRequest, SdkMessage, SessionOptions, StopReason,
    UserInput,
};
use switchboard::config::{LlmSettings, Settings};
use switchboard::store::{text_content, Entry, MessageBody, SledStore, Store, ToolCall};
use switchboard_fakes::{FakeLlm, Reply};

struct Setup {
    llm: FakeLlm,
    backend: EmbeddedBackend,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let defaults = Settings::default();
    let settings = Settings {
        data_dir: dir.path().join("data"),
        llm: LlmSettings { base_url: llm.base_url(), model: "fake-model".into(), ..defaults.llm },
        ..defaults
    };
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&settings.data_dir).unwrap());
    let backend = EmbeddedBackend::new(store.clone(), settings);
    Setup { llm, backend, store, _dir: dir }
}

async fn collect(session: &mut switchboard::agent::Session) -> Vec<SdkMessage> {
    let mut out = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(20), session.next()).await.expect("turn hung") {
        out.push(m);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_by_agent_id_continues_the_default_conversation() {
    let s = setup().await;
    let agent = s
        .backend
        .create_agent(CreateAgentOptions { persona: Some("Terse.".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(agent.blocks.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(), ["persona", "human"]);

    s.llm.push(Reply::text("one"));
    let mut session = s.backend.resume_session(&agent.agent.id, SessionOptions::default()).await.unwrap();
    assert_eq!(session.conversation_id(), agent.agent.default_conversation);
    session.send("first").unwrap();
    let messages = collect(&mut session).await;
    assert!(
        matches!(&messages[0], SdkMessage::Init { conversation_id, .. } if *conversation_id == agent.agent.default_conversation)
    );
    assert!(matches!(messages.last(), Some(SdkMessage::Result(r)) if r.success && r.result.as_deref() == Some("one")));

    s.llm.push(Reply::text("two"));
    let mut again = s.backend.resume_session(&agent.agent.id, SessionOptions::default()).await.unwrap();
    again.send("second").unwrap();
    collect(&mut again).await;
    let texts: Vec<String> =
        s.llm.requests()[1].messages().iter().skip(1).map(|m| m["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(texts, ["first", "one", "second"]);
}

/// The agent's record is kept in memory between turns; a change of its model is
/// what the next turn asks the model endpoint with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_after_a_change_of_model_uses_the_new_model() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, SessionOptions::default()).await.unwrap();
    for (model, reply) in [(None, "one"), (Some("other-model"), "two")] {
        if let Some(model) = model {
            s.backend.set_model(&agent.id, Some(model.to_string())).await.unwrap();
        }
        s.llm.push(Reply::text(reply));
        session.send(format!("before {reply}")).unwrap();
        collect(&mut session).await;
    }
    let models: Vec<Option<String>> = s.llm.requests().iter().map(|r| r.model().map(str::to_string)).collect();
    assert_eq!(models, [Some("fake-model".to_string()), Some("other-model".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_uses_the_default_agent_and_a_fresh_conversation() {
    let s = setup().await;
    s.llm.push(Reply::text("4"));
    let result = prompt(&s.backend, "2+2?", None).await.unwrap();
    assert_eq!(result.result.as_deref(), Some("4"));
    let default = s.backend.default_agent().await.unwrap();
    assert_eq!(result.agent_id, default.id);
    assert_ne!(result.conversation_id, default.default_conversation);
    assert_eq!(s.backend.list_agents().await.unwrap().len(), 1, "the default agent is created once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_messages_pages_backwards_with_a_cursor() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, SessionOptions::default()).await.unwrap();
    for i in 0..3 {
        s.llm.push(Reply::text(&format!("reply {i}")));
        session.send(format!("message {i}")).unwrap();
        collect(&mut session).await;
    }
    let conversation = session.conversation_id().to_string();
    let first = s.backend.list_messages(&conversation, PageRequest { before: None, limit: 4 }).await.unwrap();
    assert_eq!(first.messages.len(), 4);
    let second = s
        .backend
        .list_messages(&conversation, PageRequest { before: first.next_before.clone(), limit: 4 })
        .await
        .unwrap();
    assert_eq!(second.messages.len(), 2);
    assert_eq!(second.next_before, None);
    let all: Vec<Entry> = second.messages.into_iter().chain(first.messages).collect();
    assert_eq!(all, s.backend.export_conversation(&conversation).await.unwrap());
    let bad = s.backend.list_messages(&conversation, PageRequest { before: Some("msg-nope".into()), limit: 4 }).await;
    assert!(matches!(bad, Err(AgentError::Invalid(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_one_turn_at_a_time_and_can_be_cancelled() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut session = s.backend.create_session(&agent.id, SessionOptions::default()).await.unwrap();
    s.llm.push(Reply::Hang);
    session.send("wait forever").unwrap();
    assert!(matches!(session.send("again"), Err(AgentError::Busy)));
    s.llm.wait_for_requests(1, Duration::from_secs(10)).await;
    session.canceller().cancel();
    let messages = collect(&mut session).await;
    let Some(SdkMessage::Result(result)) = messages.last() else { panic!("no result: {messages:?}") };
    assert_eq!(result.stop_reason, StopReason::Cancelled);
    assert!(!result.success);

    // The session is usable again, and the cancelled user message stays in the history.
    s.llm.push(Reply::text("back"));
    session.send("hello?").unwrap();
    let messages = collect(&mut session).await;
    assert!(matches!(messages.last(), Some(SdkMessage::Result(r)) if r.success));
    let texts = s.llm.requests()[1].all_text();
    assert!(texts.contains("wait forever") && texts.contains("hello?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_conversations_run_concurrently() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    let mut slow = s.backend.create_session(&agent.id, SessionOptions::default()).await.unwrap();
    let mut fast = s.backend.create_session(&agent.id, SessionOptions::default()).await.unwrap();
    s.llm.push(Reply::Hang);
    slow.send("slow").unwrap();
    s.llm.wait_for_requests(1, Duration::from_secs(10)).await;
    s.llm.push(Reply::text("fast answer"));
    fast.send("fast").unwrap();
    let messages = collect(&mut fast).await;
    assert!(matches!(messages.last(), Some(SdkMessage::Result(r)) if r.result.as_deref() == Some("fast answer")));
    slow.close();
}

/// What a crash between the model's tool call and its result leaves behind; with
/// `started`, the durable marker written just before the tool ran.
fn cut_off_turn(store: &Arc<dyn Store>, conversation: &str, started: bool) {
    let user = Entry::new(None, MessageBody::User { content: text_content("save this") });
    let args = json!({"label": "human", "new_str": "Likes sailing."}).to_string();
    let call = ToolCall { id: "call_lost".into(), name: "memory_insert".into(), arguments: args };
    let assistant = Entry::new(
        Some(user.id().into()),
        MessageBody::Assistant { content: vec![], tool_calls: vec![call], reasoning: None },
    );
    store.append_entry(conversation, &user).unwrap();
    store.append_entry(conversation, &assistant).unwrap();
    if started {
        let marker = MessageBody::Custom { kind: "tool_started".into(), payload: json!({"tool_call_id": "call_lost"}) };
        store.append_entry(conversation, &Entry::new(Some(assistant.id().into()), marker)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_cut_off_before_it_started_runs_once_when_the_conversation_continues() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    cut_off_turn(&s.store, &agent.default_conversation, false);
    s.llm.push(Reply::text("Saved. Where were we?"));
    let mut session = s.backend.resume_session(&agent.id, SessionOptions::default()).await.unwrap();
    session.send("hello?").unwrap();
    collect(&mut session).await;
    let messages = s.llm.requests()[0].messages();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
    assert_eq!(messages[3]["tool_call_id"], "call_lost");
    assert!(messages[3]["content"].as_str().unwrap().contains("was updated"));
    assert_eq!(s.backend.memory_block(&agent.id, "human").await.unwrap().value, "Likes sailing.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_that_had_started_is_reported_interrupted_and_not_run_again() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    cut_off_turn(&s.store, &agent.default_conversation, true);
    s.llm.push(Reply::text("It was interrupted."));
    let mut session = s.backend.resume_session(&agent.id, SessionOptions::default()).await.unwrap();
    session.send("hello?").unwrap();
    collect(&mut session).await;
    let results = s.llm.requests()[0].tool_results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.contains("interrupted"), "{results:?}");
    assert_eq!(s.backend.memory_block(&agent.id, "human").await.unwrap().value, "", "the tool did not run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_messages_wait_behind_a_cut_off_tool_call_which_then_runs_once() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    cut_off_turn(&s.store, &agent.default_conversation, false);
    s.llm.push(Reply::text("Saved, and read both."));
    let mut session = s.backend.resume_session(&agent.id, SessionOptions::default()).await.unwrap();
    // Their first sending, known as such: recorded without a lookup.
    let input = |text: &str, id: &str, first| UserInput { text: text.into(), id: Some(id.into()), first };
    session
        .send_batch(vec![input("first of the batch", "m-first", true)], input("second of the batch", "m-second", true))
        .unwrap();
    collect(&mut session).await;
    let messages = s.llm.requests()[0].messages();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user", "user"], "the call settled before the batch");
    assert!(messages[3]["content"].as_str().unwrap().contains("was updated"), "it ran: {}", messages[3]);
    assert_eq!(messages[4]["content"], "first of the batch");
    assert_eq!(messages[5]["content"], "second of the batch");
    assert_eq!(s.backend.memory_block(&agent.id, "human").await.unwrap().value, "Likes sailing.");

    // Sent again (a replay), nothing is recorded twice.
    s.llm.push(Reply::text("Again."));
    let earlier = vec![input("first of the batch", "m-first", false)];
    session.send_batch(earlier, input("second of the batch", "m-second", false)).unwrap();
    collect(&mut session).await;
    let entries = s.store.entries(&agent.default_conversation).unwrap();
    let users = entries.iter().filter(|(_, e)| matches!(e.msg.body, MessageBody::User { .. })).count();
    assert_eq!(users, 3, "save this, and the batch once");
}

/// Tools a program registered, one of which panics when run (a bug in it, or in
/// switchboard around it).
struct Panicking;

#[async_trait::async_trait]
impl switchboard::agent::ExternalTools for Panicking {
    fn definitions(&self) -> Vec<serde_json::Value> {
        vec![
            json!({"type": "function", "function": {"name": "Boom", "description": "panics", "parameters": {"type": "object"}}}),
        ]
    }

    fn has(&self, name: &str) -> bool {
        name == "Boom"
    }

    async fn call(&self, _name: &str, _tool_call_id: &str, _input: serde_json::Value) -> (String, bool) {
        panic!("a tool that panics")
    }
}

/// A turn that panics still ends with a result, an internal error (a chat says
/// something went wrong), and the conversation goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_panics_ends_with_an_error_result_and_the_session_goes_on() {
    let s = setup().await;
    let agent = s.backend.default_agent().await.unwrap();
    let options = SessionOptions { external_tools: Some(Arc::new(Panicking)), ..Default::default() };
    let mut session = s.backend.create_session(&agent.id, options).await.unwrap();
    s.llm.push(Reply::tool_call("Boom", json!({})));
    session.send("run it").unwrap();
    // The operator's session asks before a program's tool runs; allowed.
    let asked = loop {
        match tokio::time::timeout(Duration::from_secs(20), session.next()).await.expect("turn hung") {
            Some(SdkMessage::ApprovalRequest { approval_id, .. }) => break approval_id,
            Some(SdkMessage::Result(r)) => panic!("ended without asking: {r:?}"),
            Some(_) => {}
            None => panic!("stream ended"),
        }
    };
    let operator = switchboard::policy::approvals::Decider::Operator { via: "test".into() };
    let allow = switchboard::policy::approvals::Choice::AllowOnce;
    s.backend.decide_approval(&asked, &operator, allow, None).await.unwrap();
    let messages = collect(&mut session).await;
    let Some(SdkMessage::Result(result)) = messages.last() else { panic!("no result: {messages:?}") };
    assert_eq!(result.stop_reason, StopReason::Error);
    assert_eq!(result.error_kind, Some(switchboard::agent::ErrorKind::Internal));

    s.llm.push(Reply::text("back"));
    session.send("hello?").unwrap();
    let messages = collect(&mut session).await;
    assert!(matches!(messages.last(), Some(SdkMessage::Result(r)) if r.success), "{messages:?}");
}
