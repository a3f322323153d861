//! Engine mode end to end: the real binary started as the Letta Code SDK starts it,
//! its wire rules, and what survives SIGKILL of a session process or of the engine.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Harness;
use serde_json::{json, Value};
use switchboard_fakes::FakeTelegram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// One process started the way the SDK starts its CLI.
struct Sdk {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sdk {
    async fn start(h: &Harness, flags: &[&str]) -> Sdk {
        std::fs::create_dir_all(h.workdir()).unwrap();
        let mut cmd = h.command(std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")));
        cmd.args(["--output-format", "stream-json", "--input-format", "stream-json"])
            .args(flags)
            .current_dir(h.workdir())
            .env("SWITCHBOARD_ENGINE__IDLE_SECS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("cannot start switchboard");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Sdk { child, stdin, lines }
    }

    async fn send(&mut self, line: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn user(&mut self, text: &str) {
        self.send(json!({"type": "user", "message": {"role": "user", "content": text}})).await;
    }

    async fn control(&mut self, id: &str, request: Value) {
        self.send(json!({"type": "control_request", "request_id": id, "request": request})).await;
    }

    async fn next(&mut self) -> Option<Value> {
        let line =
            tokio::time::timeout(LINE_TIMEOUT, self.lines.next_line()).await.expect("no line in time").ok()??;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// Lines until one matches `until` (inclusive).
    async fn until(&mut self, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = self.next().await.unwrap_or_else(|| panic!("output ended; saw {seen:#?}"));
            let done = until(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    async fn init(&mut self) -> Value {
        let init = self.next().await.expect("no init line");
        assert_eq!((init["type"].as_str(), init["subtype"].as_str()), (Some("system"), Some("init")), "{init}");
        init
    }

    async fn turn(&mut self, text: &str) -> Vec<Value> {
        self.user(text).await;
        self.until(|l| l["type"] == "result").await
    }

    async fn list(&mut self, id: &str, request: Value) -> Value {
        let mut request = request;
        request["subtype"] = json!("list_messages");
        self.control(id, request).await;
        let lines = self.until(|l| l["type"] == "control_response" && l["response"]["request_id"] == id).await;
        lines.last().unwrap()["response"].clone()
    }

    /// Ends the session the way the SDK does: stdin closed, then SIGTERM.
    async fn close(mut self) {
        self.stdin = None;
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

fn contents(page: &Value) -> Vec<String> {
    page["response"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str().map(String::from))
        .collect()
}

/// The pid in the data directory's lock file: who holds the store.
fn holder(h: &Harness) -> i32 {
    std::fs::read_to_string(h.data_dir().join("LOCK")).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_rules_the_sdk_depends_on_hold() {
    let h = Harness::new().await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Echo);
    let mut sdk = Sdk::start(&h, &["--new-agent", "--init-blocks", ""]).await;
    sdk.control("init_1", json!({"subtype": "initialize"})).await;
    let init = sdk.init().await;
    assert!(init["agent_id"].as_str().unwrap().starts_with("agent-"));
    assert!(init["conversation_id"].as_str().unwrap().starts_with("conv-"));
    assert!(init["tools"].is_array());

    // Control requests: initialize answered, an unknown subtype refused in the exact words,
    // an interrupt while idle only acknowledged, a line that is not JSON reported.
    sdk.control("bogus-1", json!({"subtype": "nope"})).await;
    sdk.control("interrupt-1", json!({"subtype": "interrupt"})).await;
    sdk.send(json!("not an object")).await;
    // Answers come as they are ready, not necessarily in order.
    let mut lines = Vec::new();
    let answered = |lines: &[Value], id: &str| lines.iter().any(|l| l["response"]["request_id"] == id);
    while !["init_1", "bogus-1", "interrupt-1"].iter().all(|id| answered(&lines, id))
        || !lines.iter().any(|l| l["type"] == "error")
    {
        lines.push(sdk.next().await.expect("output ended"));
    }
    let response = |id: &str| lines.iter().find(|l| l["response"]["request_id"] == id).unwrap()["response"].clone();
    assert_eq!(response("init_1")["subtype"], "success");
    assert_eq!(response("bogus-1")["subtype"], "error");
    assert_eq!(response("bogus-1")["error"], "Unknown control request subtype: nope");
    assert_eq!(response("interrupt-1")["subtype"], "success");
    assert!(!lines.iter().any(|l| l["type"] == "result"), "an idle interrupt ends no turn: {lines:#?}");
    let error = lines.iter().find(|l| l["type"] == "error").unwrap();
    assert_eq!(error["message"], "Invalid JSON input");

    // Two user lines at once: two turns, one result each, in order, each with its own run id.
    sdk.user("first").await;
    sdk.user("second").await;
    let mut turns = Vec::new();
    for _ in 0..2 {
        turns.push(sdk.until(|l| l["type"] == "result").await);
    }
    let mut run_ids = Vec::new();
    for (turn, text) in turns.iter().zip(["echo: first", "echo: second"]) {
        let result = turn.last().unwrap();
        assert_eq!(result["subtype"], "success");
        assert_eq!(result["result"], text);
        assert_eq!(result["conversation_id"], init["conversation_id"]);
        let run_id = result["run_ids"][0].as_str().unwrap().to_string();
        for line in turn.iter().filter(|l| l["type"] == "message") {
            assert_eq!(line["run_id"], run_id.as_str(), "{line}");
            assert!(line["content"].is_string(), "{line}");
        }
        assert_eq!(turn.iter().filter(|l| l["type"] == "result").count(), 1);
        run_ids.push(run_id);
    }
    assert_ne!(run_ids[0], run_ids[1]);
    sdk.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_process_killed_mid_turn_loses_nothing() {
    let h = Harness::new().await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Agent);
    h.llm.set_chunk_delay(Duration::from_millis(150));
    let mut sdk = Sdk::start(&h, &["--new-agent"]).await;
    let agent = sdk.init().await["agent_id"].as_str().unwrap().to_string();
    sdk.user("slow words before the kill").await;
    h.llm.wait_for_requests(1, LINE_TIMEOUT).await;
    sdk.kill9().await;

    // The next process on the same default conversation finds the message, once, and
    // the model's next request carries it.
    let mut sdk = Sdk::start(&h, &["--agent", &agent, "--conversation", "default"]).await;
    sdk.init().await;
    let turn = sdk.turn("after the kill").await;
    assert_eq!(turn.last().unwrap()["subtype"], "success", "{turn:#?}");
    let page = sdk.list("list-1", json!({"order": "asc"})).await;
    let said = contents(&page);
    assert_eq!(said.iter().filter(|c| c.as_str() == "slow words before the kill").count(), 1, "{said:#?}");
    assert!(said.iter().any(|c| c == "after the kill"), "{said:#?}");
    let last = h.llm.requests().last().unwrap().all_text();
    assert!(last.contains("slow words before the kill") && last.contains("after the kill"), "{last}");
    sdk.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_replaced_and_keeps_what_it_stored() {
    let h = Harness::new().await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Agent);
    h.llm.set_chunk_delay(Duration::from_millis(150));
    let mut sdk = Sdk::start(&h, &["--new-agent"]).await;
    let init = sdk.init().await;
    let conversation = init["conversation_id"].as_str().unwrap().to_string();
    let engine = holder(&h);
    assert_ne!(engine as u32, sdk.child.id().unwrap(), "the session runs in the background engine");
    // Beside it, the operator's commands work.
    let shown = h.run(&["agent", "show", init["agent_id"].as_str().unwrap()]).await;
    shown.assert_ok();
    assert!(shown.stdout.contains(&conversation), "{}", shown.stdout);
    sdk.user("slow words before the engine dies").await;
    h.llm.wait_for_requests(1, LINE_TIMEOUT).await;
    // SAFETY: killing the engine this test started.
    unsafe { libc::kill(engine, libc::SIGKILL) };
    // The session's process sees its output end.
    while sdk.next().await.is_some() {}
    sdk.kill9().await;

    let mut sdk = Sdk::start(&h, &["--conversation", &conversation]).await;
    assert_eq!(sdk.init().await["conversation_id"], conversation.as_str());
    assert_ne!(holder(&h), engine, "a new engine took over");
    let turn = sdk.turn("after the engine died").await;
    assert_eq!(turn.last().unwrap()["subtype"], "success", "{turn:#?}");
    let said = contents(&sdk.list("list-1", json!({"order": "asc"})).await);
    assert_eq!(said.iter().filter(|c| c.as_str() == "slow words before the engine dies").count(), 1, "{said:#?}");
    sdk.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_sessions_run_in_a_running_serve() {
    let tg = FakeTelegram::start().await;
    let mut h = Harness::new().await;
    h.with_telegram(&tg);
    h.set("SWITCHBOARD_TELEGRAM__DM_POLICY", "open");
    h.llm.set_fallback(switchboard_fakes::Fallback::Agent);
    let daemon = h.serve(&tg).await;
    let serving = holder(&h);

    let mut sdk = Sdk::start(&h, &["--new"]).await;
    let init = sdk.init().await;
    let turn = sdk.turn("from the SDK while serve runs").await;
    assert_eq!(turn.last().unwrap()["result"], "echo: from the SDK while serve runs");
    sdk.close().await;

    // The operator's agent and conversation commands reach serve too.
    let conversation = init["conversation_id"].as_str().unwrap();
    let agent = init["agent_id"].as_str().unwrap();
    let listed = h.run(&["conversation", "list", "--agent", agent]).await;
    listed.assert_ok();
    assert!(listed.stdout.contains(conversation), "{}", listed.stdout);
    let exported = h.run(&["conversation", "export", conversation]).await;
    exported.assert_ok();
    assert!(exported.stdout.contains("from the SDK while serve runs"), "{}", exported.stdout);
    h.run(&["agent", "memory", "set", agent, "human", "Set while serve runs."]).await.assert_ok();
    let shown = h.run(&["agent", "show", agent]).await;
    assert!(shown.stdout.contains("Set while serve runs."), "{}", shown.stdout);
    let missing = h.run(&["agent", "show", "agent-missing"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("see `switchboard agent list`"), "{}", missing.stderr);

    // So do `prompt` and `chat`, approvals included (decided here, run there).
    let prompted = h.run(&["prompt", "hello from prompt"]).await;
    prompted.assert_ok();
    assert_eq!(prompted.stdout, "echo: hello from prompt\n");
    std::fs::create_dir_all(h.workdir()).unwrap();
    let ran = h.run(&["prompt", "--yes", "RUN echo approved > approved.txt"]).await;
    ran.assert_ok();
    assert_eq!(ran.stdout, "ran: echo approved > approved.txt\n");
    assert_eq!(std::fs::read_to_string(h.workdir().join("approved.txt")).unwrap(), "approved\n");
    let refused = h.run(&["prompt", "RUN touch refused.txt"]).await;
    refused.assert_ok();
    assert!(!h.workdir().join("refused.txt").exists(), "an unattended prompt denies");
    let json = h.prompt_json(&["--conversation", conversation], "json from prompt").await;
    let lines = json.json_lines();
    assert_eq!(lines[0]["type"], "init");
    assert_eq!(lines.last().unwrap()["result"], "echo: json from prompt");
    let chatted = h.run_with_stdin(&["chat", "--conversation", conversation], Some("first line\nsecond line\n")).await;
    chatted.assert_ok();
    assert!(
        chatted.stdout.contains("echo: first line") && chatted.stdout.contains("echo: second line"),
        "{}",
        chatted.stdout
    );
    let audit = h.run(&["approvals", "audit"]).await;
    assert!(audit.stdout.contains("control socket"), "the decision names where it came from: {}", audit.stdout);

    // A console session decides only what it was asked; an agent is not deleted under serve.
    let socket = h.data_dir().join("control.sock");
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut events = BufReader::new(read).lines();
    let open = json!({"command": "console", "target": {"kind": "default", "agent": agent}});
    write.write_all(format!("{open}\n").as_bytes()).await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&events.next_line().await.unwrap().unwrap()).unwrap()["code"], 0);
    assert_eq!(serde_json::from_str::<Value>(&events.next_line().await.unwrap().unwrap()).unwrap()["event"], "opened");
    let decide = json!({"op": "decide", "approval_id": "apr-of-someone-else", "choice": "allow_once", "reason": null});
    write.write_all(format!("{decide}\n").as_bytes()).await.unwrap();
    let refused: Value = serde_json::from_str(&events.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(refused["event"], "failed");
    assert!(refused["error"].as_str().unwrap().contains("was not asked in this session"), "{refused}");
    drop(write);
    let deleted = h.run(&["agent", "delete", agent]).await;
    assert_eq!(deleted.code, 1);
    assert!(deleted.stderr.contains("stop them first"), "{}", deleted.stderr);
    assert_eq!(holder(&h), serving, "serve kept the data directory");
    assert!(!h.data_dir().join("engine.log").exists(), "no background engine was needed");

    // The daemon still answers its chats.
    tg.send_dm(7, "hello bot");
    let deadline = tokio::time::Instant::now() + LINE_TIMEOUT;
    while !tg.messages_in(7).iter().any(|m| m.text == "echo: hello bot") {
        assert!(tokio::time::Instant::now() < deadline, "the DM was not answered: {:?}", tg.sent());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_are_one_clear_line_before_init() {
    let h = Harness::new().await;
    // A workspace that holds the store.
    let out = h.run(&["--output-format", "stream-json", "--input-format", "stream-json", "--new"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("contains switchboard's own files"), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    // An unknown conversation, an unknown flag, a mode nobody names.
    std::fs::create_dir_all(h.workdir()).unwrap();
    for (flags, expected) in [
        (vec!["--conversation", "conv-00000000-0000-0000-0000-000000000000"], "not found"),
        (vec!["--new", "--frobnicate"], "unknown option --frobnicate"),
        (vec!["--new", "--permission-mode", "everything"], "invalid permission mode"),
    ] {
        let mut cmd = h.command(std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")));
        cmd.args(["--output-format", "stream-json", "--input-format", "stream-json"])
            .args(&flags)
            .current_dir(h.workdir())
            .env("SWITCHBOARD_ENGINE__IDLE_SECS", "1")
            .stdin(Stdio::null());
        let out = tokio::time::timeout(LINE_TIMEOUT, cmd.output()).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout for {flags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_hangs_on_an_open_question_a_running_tool_or_a_bad_line() {
    let h = Harness::new().await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Agent);
    let asked = |l: &Value| l["type"] == "control_request" && l["request"]["subtype"] == "can_use_tool";

    // An interrupt while the SDK is asked about a tool: one result, interrupted.
    let mut sdk = Sdk::start(&h, &["--new"]).await;
    sdk.init().await;
    sdk.user("RUN touch asked.txt").await;
    let question = sdk.until(asked).await.pop().unwrap();
    assert_eq!(question["request"]["tool_name"], "Bash");
    assert_eq!(question["request"]["input"]["command"], "touch asked.txt");
    sdk.control("interrupt-1", json!({"subtype": "interrupt"})).await;
    let rest = sdk.until(|l| l["type"] == "result").await;
    assert_eq!(rest.last().unwrap()["subtype"], "interrupted", "{rest:#?}");
    assert!(!h.workdir().join("asked.txt").exists());

    // A user line that cannot be a turn still gets its one result.
    sdk.send(json!({"type": "user", "message": {"role": "user", "content": "   "}})).await;
    let refused = sdk.until(|l| l["type"] == "result").await;
    assert_eq!(refused.last().unwrap()["subtype"], "error");
    assert!(refused.iter().any(|l| l["type"] == "error"), "{refused:#?}");

    // The input ends while a question is open: the tool is refused, the turn ends,
    // the process exits.
    sdk.user("RUN touch unanswered.txt").await;
    sdk.until(asked).await;
    sdk.stdin = None;
    let end = sdk.until(|l| l["type"] == "result").await;
    let denied = end.iter().find(|l| l["message_type"] == "tool_return_message").unwrap();
    assert_eq!(denied["status"], "error");
    while sdk.next().await.is_some() {}
    let status = tokio::time::timeout(LINE_TIMEOUT, sdk.child.wait()).await.expect("the process exits").unwrap();
    assert!(status.success());
    assert!(!h.workdir().join("unanswered.txt").exists());

    // An interrupt stops a running command.
    let mut sdk = Sdk::start(&h, &["--new", "--yolo"]).await;
    sdk.init().await;
    sdk.user("RUN sleep 60").await;
    sdk.until(|l| l["message_type"] == "tool_call_message").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    sdk.control("interrupt-2", json!({"subtype": "interrupt"})).await;
    let rest = sdk.until(|l| l["type"] == "result").await;
    assert_eq!(rest.last().unwrap()["subtype"], "interrupted", "{rest:#?}");
    assert!(started.elapsed() < Duration::from_secs(10), "the command was not stopped: {:?}", started.elapsed());
    sdk.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_sessions_and_commands_run_beside_an_open_chat() {
    let h = Harness::new().await;
    h.llm.set_fallback(switchboard_fakes::Fallback::Echo);
    // A chat that opened the store itself, and stays open.
    let mut cmd = h.command(std::path::Path::new(env!("CARGO_BIN_EXE_switchboard")));
    cmd.arg("chat").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut chat = cmd.spawn().unwrap();
    let mut chat_in = chat.stdin.take().unwrap();
    let mut chat_out = BufReader::new(chat.stdout.take().unwrap()).lines();
    chat_in.write_all(b"from the chat\n").await.unwrap();
    let line = tokio::time::timeout(LINE_TIMEOUT, chat_out.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(line, "echo: from the chat");
    let chat_pid = chat.id().unwrap() as i32;
    assert_eq!(holder(&h), chat_pid, "the chat holds the store");

    // An SDK session, a prompt and an agent command, all served by the chat.
    let mut sdk = Sdk::start(&h, &["--new"]).await;
    sdk.init().await;
    let turn = sdk.turn("from the SDK beside a chat").await;
    assert_eq!(turn.last().unwrap()["result"], "echo: from the SDK beside a chat");
    sdk.close().await;
    let prompted = h.run(&["prompt", "from a prompt beside a chat"]).await;
    prompted.assert_ok();
    assert_eq!(prompted.stdout, "echo: from a prompt beside a chat\n");
    h.run(&["agent", "list"]).await.assert_ok();
    assert_eq!(holder(&h), chat_pid);

    // The chat goes on, then ends when its input does.
    chat_in.write_all(b"still here\n").await.unwrap();
    let line = tokio::time::timeout(LINE_TIMEOUT, chat_out.next_line()).await.unwrap().unwrap().unwrap();
    assert_eq!(line, "echo: still here");
    drop(chat_in);
    let status = tokio::time::timeout(LINE_TIMEOUT, chat.wait()).await.expect("the chat ends").unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_failures_are_an_error_then_a_result_and_session_settings_persist() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_LLM__MAX_RETRIES", "0");
    let mut sdk = Sdk::start(&h, &["--new-agent", "--system-custom", "Answer in haiku."]).await;
    let agent = sdk.init().await["agent_id"].as_str().unwrap().to_string();
    // The fake model fails (no scripted reply): the SDK reads the error, then the result.
    let turn = sdk.turn("this fails").await;
    let error = turn.iter().find(|l| l["type"] == "error").expect("an error line");
    assert_eq!(error["stop_reason"], "llm_api_error");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let result = turn.last().unwrap();
    assert_eq!((result["subtype"].as_str(), result["stop_reason"].as_str()), (Some("error"), Some("llm_api_error")));
    assert!(result["result"].is_null());
    sdk.close().await;

    // A model and a preset given at session time are kept on the agent.
    let mut sdk = Sdk::start(&h, &["--agent", &agent, "--new", "-m", "other-model", "--system", "letta-claude"]).await;
    assert_eq!(sdk.init().await["model"], "other-model");
    sdk.close().await;
    let shown = h.run(&["agent", "show", &agent]).await;
    shown.assert_ok();
    assert!(shown.stdout.contains("model:                other-model"), "{}", shown.stdout);
    assert!(shown.stdout.contains("\"preset\":\"default\""), "{}", shown.stdout);
}
