//! Restart safety: a process is killed with SIGKILL while an approval is pending (or
//! while the approved tool runs); after a restart the decision still works, the turn
//! completes, and the tool has run exactly once. Approvals that expire while no
//! process runs are denied.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::json;
use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{AgentBackend, SdkMessage, SessionOptions};
use switchboard::config::{self, ConfigSource};
use switchboard::policy::approvals::{Choice, Decider};
use switchboard::store::SledStore;
use switchboard_fakes::Reply;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Tells the child test what to do (not a SWITCHBOARD_ variable: config would reject it).
const CHILD_MODE: &str = "SB_TEST_RESTART_CHILD";

/// The process that gets killed: it sends a message, prints the approval id it is
/// asked about and, in mode `allow`, allows it itself. Then it waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn restart_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    let settings = config::load(&ConfigSource::from_process(None)).unwrap().settings;
    let store = std::sync::Arc::new(SledStore::open(&settings.data_dir).unwrap());
    let backend = EmbeddedBackend::new(store, settings);
    let agent = backend.default_agent().await.unwrap();
    let options = SessionOptions { chat: Some("console".into()), sender: Some("console".into()), ..Default::default() };
    let mut session = backend.resume_session(&agent.id, options).await.unwrap();
    println!("conversation {}", session.conversation_id());
    session.send("count, please").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, session.next()).await {
        if let SdkMessage::ApprovalRequest { approval_id, .. } = message {
            println!("approval {approval_id}");
            if mode == "allow" {
                let me = Decider::Operator { via: "test".into() };
                backend.decide_approval(&approval_id, &me, Choice::AllowOnce, None).await.unwrap();
            }
        }
    }
}

/// Starts the child and returns once it printed a line starting with `until`, with
/// the conversation id and that line's value.
async fn child_until(h: &Harness, mode: &str, until: &str) -> (tokio::process::Child, String, String) {
    let mut cmd = h.command(&std::env::current_exe().unwrap());
    cmd.args(["--exact", "restart_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut conversation = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest's own "test restart_child ... " may share the first line.
            if let Some((_, c)) = line.split_once("conversation ") {
                conversation = c.trim().to_string();
            }
            if let Some((_, v)) = line.split_once(until) {
                return v.trim().to_string();
            }
        }
        panic!("the child ended before printing {until:?}");
    })
    .await
    .expect("the child did not get that far in 60 s");
    (child, conversation, found)
}

fn count_lines(h: &Harness) -> usize {
    std::fs::read_to_string(h.workdir().join("count.txt")).map(|t| t.lines().count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_survives_sigkill_and_the_turn_completes_after_restart() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call("Bash", json!({"command": "echo ran >> count.txt"})));
    h.llm.push(Reply::text("Counted once."));
    let (mut child, _conversation, id) = child_until(&h, "wait", "approval ").await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    assert_eq!(count_lines(&h), 0);

    let list = h.run(&["approvals", "list"]).await;
    list.assert_ok();
    assert!(
        list.stdout.contains(&id)
            && list.stdout.contains("pending")
            && list.stdout.contains("Bash: echo ran >> count.txt"),
        "{}",
        list.stdout
    );

    let allowed = h.run(&["approvals", "allow", &id]).await;
    allowed.assert_ok();
    assert_eq!(allowed.stdout, "Counted once.\n");
    assert_eq!(count_lines(&h), 1, "the tool ran exactly once");
    let reqs = h.llm.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].tool_results()[0].1.contains("exit code: 0"), "{:?}", reqs[1].tool_results());

    let again = h.run(&["approvals", "allow", &id]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("is not a pending approval request"), "{}", again.stderr);
    assert_eq!(count_lines(&h), 1);
    let audit = h.run(&["approvals", "audit"]).await;
    assert!(audit.stdout.contains("allowed_once") && audit.stdout.contains("by=console"), "{}", audit.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_running_when_the_process_dies_is_never_run_again() {
    let h = Harness::new().await;
    // The sleep outlives the kill (a SIGKILLed process cannot stop its children), so
    // keep it short, but long enough that the kill lands while the tool runs.
    h.llm.push(Reply::tool_call("Bash", json!({"command": "echo ran >> count.txt; sleep 10"})));
    let (mut child, conversation, _id) = child_until(&h, "allow", "approval ").await;
    let started = Instant::now();
    while count_lines(&h) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the allowed tool never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // The next message finishes the cut-off turn first: the tool is reported as
    // interrupted, not run again.
    h.llm.push(Reply::text("It was interrupted; shall I try again?"));
    let out = h.run(&["prompt", "--conversation", &conversation, "did it work?"]).await;
    out.assert_ok();
    assert_eq!(out.stdout, "It was interrupted; shall I try again?\n");
    let last = h.llm.requests().pop().unwrap();
    assert!(last.tool_results()[0].1.contains("interrupted"), "{:?}", last.tool_results());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count_lines(&h), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_that_expire_while_nothing_runs_are_denied_at_the_next_start() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_POLICY__APPROVAL_TIMEOUT_SECS", "5");
    h.llm.push(Reply::tool_call("Bash", json!({"command": "echo ran >> count.txt"})));
    let (mut child, conversation, id) = child_until(&h, "wait", "approval ").await;
    let asked = Instant::now();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(asked.elapsed()) + Duration::from_millis(300)).await;

    let list = h.run(&["approvals", "list"]).await;
    list.assert_ok();
    assert!(list.stderr.contains("1 approval request(s) expired while switchboard was not running"), "{}", list.stderr);
    assert_eq!(list.stdout.trim(), "No pending approval requests.");
    let all = h.run(&["approvals", "list", "--all"]).await;
    assert!(all.stdout.contains(&id) && all.stdout.contains("expired"));

    h.llm.push(Reply::text("The request timed out, so nothing ran."));
    h.run(&["prompt", "--conversation", &conversation, "so?"]).await.assert_ok();
    let last = h.llm.requests().pop().unwrap();
    assert!(last.tool_results()[0].1.contains("timed out"), "{:?}", last.tool_results());
    assert_eq!(count_lines(&h), 0);
}
