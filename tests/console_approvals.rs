//! The console as a channel: approvals in `chat` and `prompt` with piped input, which
//! fail closed unless `--yes`, and the tools running for real in the workdir.

mod common;

use common::Harness;
use serde_json::json;
use switchboard_fakes::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_chat_denies_approvals_unless_yes() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call("Write", json!({"path": "a.txt", "content": "A"})));
    h.llm.push(Reply::text("I could not write it."));
    let out = h.run_with_stdin(&["chat"], Some("write a.txt\n")).await;
    out.assert_ok();
    assert!(!h.workdir().join("a.txt").exists());
    assert_eq!(
        out.stdout,
        "  ⚙ Write(content=\"A\", path=\"a.txt\")\n    ↳ Denied by console. (nobody can approve here: input is not a terminal (use --yes to allow))\nI could not write it.\n"
    );

    h.llm.push(Reply::tool_call("Write", json!({"path": "b.txt", "content": "B"})));
    h.llm.push(Reply::text("Written."));
    let out = h.run_with_stdin(&["chat", "--yes"], Some("write b.txt\n")).await;
    out.assert_ok();
    assert_eq!(std::fs::read_to_string(h.workdir().join("b.txt")).unwrap(), "B");
    assert!(out.stdout.contains("↳ Allowed once by console.") && out.stdout.ends_with("Written.\n"), "{}", out.stdout);

    let audit = h.run(&["approvals", "audit"]).await;
    let outcomes: Vec<&str> = audit.stdout.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(outcomes, ["denied", "allowed_once"], "{}", audit.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_runs_read_only_tools_without_asking_and_bash_with_yes() {
    let h = Harness::new().await;
    std::fs::create_dir_all(h.workdir().join("docs")).unwrap();
    std::fs::write(h.workdir().join("docs/readme.md"), "line one\nline two\n").unwrap();
    h.llm.push(Reply::tool_call("Read", json!({"path": "docs/readme.md"})));
    h.llm.push(Reply::tool_call("Bash", json!({"command": "wc -l docs/readme.md"})));
    h.llm.push(Reply::text("Two lines."));
    let out = h.run(&["prompt", "--yes", "--output-format", "stream-json", "count the lines"]).await;
    out.assert_ok();
    let lines = out.json_lines();
    let requests: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "approval_request").collect();
    assert_eq!(requests.len(), 1, "only Bash needs approval in standard mode");
    assert_eq!(requests[0]["tool_name"], "Bash");
    let reqs = h.llm.requests();
    assert!(reqs[1].tool_results()[0].1.contains("line two"));
    let bash = reqs[2].tool_results().pop().unwrap();
    assert!(bash.1.starts_with("2 docs/readme.md") && bash.1.contains("exit code: 0"), "{bash:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_modes_and_rules_apply_from_the_command_line() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_AGENT__PERMISSION_MODE", "memory");
    h.set("SWITCHBOARD_AGENT__ALLOWED_TOOLS", "Bash(echo hi*)");
    h.llm.push(Reply::tool_calls(vec![
        ("Bash", json!({"command": "echo hi there"})),
        ("Bash", json!({"command": "echo hi; touch pwned"})),
        ("Write", json!({"path": "w.txt", "content": "x"})),
    ]));
    h.llm.push(Reply::text("ok"));
    let out = h.run(&["prompt", "--output-format", "stream-json", "try things"]).await;
    out.assert_ok();
    assert!(!out.json_lines().iter().any(|l| l["type"] == "approval_request"), "memory mode never asks");
    let results = h.llm.requests()[1].tool_results();
    assert!(results[0].1.contains("hi there"), "the allowed pattern ran: {results:?}");
    assert!(results[1].1.contains("not permitted"), "chaining falls through to the mode: {results:?}");
    assert!(results[2].1.contains("not permitted"), "{results:?}");
    assert!(!h.workdir().join("pwned").exists() && !h.workdir().join("w.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_search_finds_messages_from_other_conversations_where_configured() {
    let mut h = Harness::new().await;
    h.llm.push(Reply::tool_call("conversation_search", json!({"query": "ostara"})));
    h.llm.push(Reply::text("I don't know."));
    h.run(&["prompt", "Our boat is called Ostara. Have we talked about it?"]).await.assert_ok();
    // By default a search stays in its conversation.
    h.llm.push(Reply::tool_call("conversation_search", json!({"query": "ostara"})));
    h.llm.push(Reply::text("No idea."));
    h.run(&["prompt", "What is our boat called?"]).await.assert_ok();
    let result = h.llm.requests()[3].tool_results().pop().unwrap().1;
    assert!(result.starts_with("No past messages match"), "{result}");

    // The operator (an admin) may widen it to every conversation of the agent.
    h.set("SWITCHBOARD_TOOLS__CONVERSATION_SEARCH", "agent");
    h.llm.push(Reply::text("Noted: the boat is called Ostara."));
    h.run(&["prompt", "Our boat is called Ostara."]).await.assert_ok();
    h.llm.push(Reply::tool_call("conversation_search", json!({"query": "ostara"})));
    h.llm.push(Reply::text("It is called Ostara."));
    // A fresh conversation: only the search can find the earlier one.
    let out = h.run(&["prompt", "What is our boat called?"]).await;
    out.assert_ok();
    let result = h.llm.requests()[6].tool_results().pop().unwrap().1;
    assert!(result.contains("user: Our boat is called Ostara.") && result.contains("assistant: Noted"), "{result}");
}
