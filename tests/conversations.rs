//! Conversations across processes: `chat` continuing after a restart, compaction with
//! a small context window, and export -> import round trips.

mod common;

use common::Harness;
use serde_json::json;
use switchboard_fakes::Reply;

fn non_system(messages: &[serde_json::Value]) -> Vec<String> {
    messages.iter().filter(|m| m["role"] != "system").map(|m| m["content"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_continues_a_conversation_after_the_process_restarts() {
    let h = Harness::new().await;
    h.llm.push(Reply::text("Noted: the code word is heron."));
    let first = h.prompt_json(&[], "The code word is heron.").await;
    let conversation = first.conversation_id();

    // A new process (the first one has exited) continues from the stored transcript.
    h.llm.push(Reply::chunks(["It is ", "heron."]));
    h.llm.push(Reply::text("You're welcome."));
    let out =
        h.run_with_stdin(&["chat", "--conversation", &conversation], Some("What is the code word?\nthanks\n")).await;
    out.assert_ok();
    assert_eq!(out.stdout, "It is heron.\nYou're welcome.\n");

    let reqs = h.llm.requests();
    assert_eq!(
        non_system(&reqs[1].messages()),
        ["The code word is heron.", "Noted: the code word is heron.", "What is the code word?"]
    );
    assert_eq!(non_system(&reqs[2].messages()).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_uses_the_agents_default_conversation_unless_told_new() {
    let h = Harness::new().await;
    h.llm.push(Reply::text("one"));
    h.run_with_stdin(&["chat"], Some("first\n")).await.assert_ok();
    h.llm.push(Reply::text("two"));
    h.run_with_stdin(&["chat"], Some("second\n")).await.assert_ok();
    assert_eq!(non_system(&h.llm.requests()[1].messages()), ["first", "one", "second"]);

    h.llm.push(Reply::text("three"));
    h.run_with_stdin(&["chat", "--new"], Some("third\n")).await.assert_ok();
    assert_eq!(non_system(&h.llm.requests()[2].messages()), ["third"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_chat_shows_tool_calls_on_one_line_and_fails_when_a_turn_fails() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call("memory_insert", json!({"label": "human", "new_str": "Likes jazz."})));
    h.llm.push(Reply::text("Saved."));
    h.llm.push(Reply::error(400));
    let out = h.run_with_stdin(&["chat"], Some("remember I like jazz\nand this fails\n")).await;
    assert_eq!(out.code, 1, "a failed turn makes piped chat exit non-zero");
    assert_eq!(out.stdout, "  ⚙ memory_insert(label=\"human\", new_str=\"Likes jazz.\")\nSaved.\n");
    assert!(out.stderr.contains("error: the model endpoint answered HTTP 400"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_summarises_older_turns_and_later_calls_send_summary_plus_tail() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_AGENT__SYSTEM_PROMPT", "minimal");
    // Measure what every request carries besides the conversation (system prompt and
    // tool definitions), then size the window around it: the compaction point sits
    // 2500 tokens above that, so ~1000 tokens of history fit and ~3000 do not.
    h.llm.push(Reply::text("calibrated"));
    h.prompt_json(&[], "hi").await;
    let probe = &h.llm.requests()[0];
    let fixed = (probe.system_prompt().len() + probe.body()["tools"].to_string().len()) / 4;
    let window = (fixed + 2500) * 10 / 8 + 1;
    h.set("SWITCHBOARD_LLM__CONTEXT_WINDOW", &window.to_string());
    h.set("SWITCHBOARD_AGENT__COMPACTION_THRESHOLD", "0.8");
    let alpha = format!("ALPHA {}", "a ".repeat(2000));
    let bravo = format!("BRAVO {}", "b ".repeat(4000));

    h.llm.push(Reply::text("ok one"));
    let first = h.prompt_json(&[], &alpha).await;
    let conversation = first.conversation_id();
    // The second turn pushes the prompt past the threshold: first the summary call,
    // then the real one.
    h.llm.push(Reply::text("SUMMARY: the person sent a block of As."));
    h.llm.push(Reply::text("ok two"));
    h.prompt_json(&["--conversation", &conversation], &bravo).await;
    h.llm.push(Reply::text("ok three"));
    h.prompt_json(&["--conversation", &conversation], "What did I send first?").await;

    let reqs = h.llm.requests()[1..].to_vec();
    assert_eq!(reqs.len(), 4, "expected turn, summary, turn, turn");
    let summary_request = &reqs[1];
    assert!(summary_request.system_prompt().contains("condense"), "{}", summary_request.system_prompt());
    assert!(summary_request.all_text().contains("ALPHA"));
    assert!(summary_request.tool_names().is_empty());

    for later in &reqs[2..] {
        assert!(later.system_prompt().contains("SUMMARY: the person sent a block of As."));
        assert!(!later.all_text().contains("ALPHA"), "summarised turns must not be sent again");
        assert!(later.all_text().contains("BRAVO"), "the kept tail is sent verbatim");
    }

    // History is never rewritten: the export still holds every turn, plus the summary.
    let export = h.run(&["conversation", "export", &conversation]).await;
    export.assert_ok();
    let lines = export.json_lines();
    assert!(export.stdout.contains("ALPHA") && export.stdout.contains("BRAVO"));
    let compaction = lines.iter().find(|l| l["msg"]["role"] == "custom").expect("no compaction entry");
    assert_eq!(compaction["msg"]["kind"], "compaction");
    assert_eq!(compaction["msg"]["payload"]["summary"], "SUMMARY: the person sent a block of As.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_recreates_an_equal_conversation() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call("memory_insert", json!({"label": "human", "new_str": "Ada"})));
    h.llm.push(Reply::text("Hi Ada."));
    let conversation = h.prompt_json(&[], "I am Ada").await.conversation_id();
    h.llm.push(Reply::text("Still Ada."));
    h.prompt_json(&["--conversation", &conversation], "Who am I?").await;

    let file = h.path("export.jsonl");
    let file_arg = file.to_str().unwrap();
    h.run(&["conversation", "export", &conversation, "--output", file_arg]).await.assert_ok();
    let exported = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = exported.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7, "user, assistant+call, tool_started, tool, assistant, user, assistant");
    assert_eq!(lines[2]["msg"]["kind"], "tool_started");
    assert!(lines.iter().all(|l| l["_v"] == 2 && l.get("parent_id").is_some() && l["msg"]["id"].is_string()));
    assert!(lines[0]["parent_id"].is_null());
    assert_eq!(lines[1]["parent_id"], lines[0]["msg"]["id"]);

    let imported = h.run(&["conversation", "import", file_arg]).await;
    imported.assert_ok();
    let new_id = imported.stdout.trim().to_string();
    assert!(new_id.starts_with("conv-") && new_id != conversation);
    let again = h.run(&["conversation", "export", &new_id]).await;
    again.assert_ok();
    assert_eq!(again.stdout, exported);

    // The imported conversation continues like the original.
    h.llm.push(Reply::text("Yes."));
    h.prompt_json(&["--conversation", &new_id], "Continue").await;
    assert_eq!(non_system(&h.llm.requests()[3].messages()).last().unwrap(), "Continue");
    assert!(h.llm.requests()[3].all_text().contains("Still Ada."));

    let listed = h.run(&["conversation", "list"]).await;
    assert!(listed.stdout.contains(&conversation) && listed.stdout.contains(&new_id));

    common::write(&h.path("bad.jsonl"), "{\"_v\":2,\"parent_id\":null,\"msg\":{\"id\":\"m\"}}\n");
    let bad = h.run(&["conversation", "import", h.path("bad.jsonl").to_str().unwrap()]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.starts_with("error: line 1 of the import is not a transcript entry"), "{}", bad.stderr);
}
