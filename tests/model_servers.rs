//! The model client against servers that depart from OpenAI's behaviour, as the
//! fake reproduces them (llama-cpp-python's quirks, FastAPI error bodies, empty
//! replies, validation errors answered with HTTP 500).

mod common;

use common::Harness;
use serde_json::json;
use switchboard_fakes::{Quirks, Reply};

/// Each quirk alone, then all of llama-cpp-python's together.
fn modes() -> Vec<(&'static str, Quirks)> {
    let none = Quirks::default();
    vec![
        ("no quirks", none),
        ("null content refused", Quirks { null_content_is_500: true, ..none }),
        ("tools need tool_choice", Quirks { tools_need_tool_choice: true, ..none }),
        ("no streamed tool calls", Quirks { no_streamed_tool_calls: true, ..none }),
        ("no usage", Quirks { no_usage: true, ..none }),
        ("llama-cpp-python", Quirks::llama_cpp_python()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_round_trip_works_in_every_quirk_mode() {
    for (mode, quirks) in modes() {
        let h = Harness::new().await;
        h.llm.set_quirks(quirks);
        std::fs::create_dir_all(h.workdir()).unwrap();
        std::fs::write(h.workdir().join("notes.txt"), "hello from the file").unwrap();
        h.llm.push(Reply::tool_call("Read", json!({"path": "notes.txt"})));
        h.llm.push(Reply::text("The file says hello."));
        let out = h.run(&["prompt", "what does notes.txt say?"]).await;
        assert_eq!(out.code, 0, "{mode}: {}", out.stderr);
        assert!(out.stdout.contains("The file says hello."), "{mode}: {}", out.stdout);

        let requests = h.llm.requests();
        for r in &requests {
            assert_eq!(r.body()["tool_choice"], "auto", "{mode}: tools are sent with tool_choice");
            let null = r.messages().iter().any(|m| m["role"] == "assistant" && m["content"].is_null());
            assert!(!null, "{mode}: an assistant message's content is never null");
        }
        let last = requests.last().unwrap();
        let result = last.messages().into_iter().find(|m| m["role"] == "tool").expect("the tool's result");
        assert!(result["content"].as_str().unwrap().contains("hello from the file"), "{mode}: {result}");
        if quirks.no_streamed_tool_calls {
            // Each model call: an empty stream first, then the same request not streamed.
            let streamed: Vec<bool> = requests.iter().map(|r| r.is_stream()).collect();
            assert_eq!(streamed, [true, false, true, false], "{mode}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_stream_false_asks_for_whole_replies() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_LLM__STREAM", "false");
    h.llm.push(Reply::text("whole"));
    let out = h.run(&["prompt", "hi"]).await;
    out.assert_ok();
    assert_eq!(out.stdout, "whole\n");
    let request = &h.llm.requests()[0];
    assert!(!request.is_stream() && request.body().get("stream_options").is_none(), "{}", request.body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fastapi_detail_error_shows_its_text_on_one_line() {
    let h = Harness::new().await;
    h.llm.set_quirks(Quirks::llama_cpp_python());
    let body = json!({"detail": "Model not found:\n  fake-model"}).to_string();
    h.llm.push(Reply::HttpError { status: 404, retry_after: None, body });
    let out = h.run(&["prompt", "hi"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Model not found: fake-model"), "{}", out.stderr);
    assert!(!out.stderr.contains("{\"detail\""), "not raw JSON: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_error_answered_with_500_is_not_retried() {
    let h = Harness::new().await;
    let body = json!({"detail": "1 validation error for ChatCompletionRequest"}).to_string();
    h.llm.push(Reply::HttpError { status: 500, retry_after: None, body });
    let out = h.run(&["prompt", "hi"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("1 validation error"), "{}", out.stderr);
    assert_eq!(h.llm.requests().len(), 1, "asked once: the same request would fail again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_reply_is_a_clear_error() {
    let h = Harness::new().await;
    h.llm.set_quirks(Quirks::llama_cpp_python());
    h.llm.push(Reply::chunks(Vec::<String>::new()));
    let out = h.run(&["prompt", "hi"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("empty reply"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_a_server_does_not_report_is_unknown_not_zero() {
    let h = Harness::new().await;
    h.llm.set_quirks(Quirks { no_usage: true, ..Quirks::default() });
    h.llm.push(Reply::text("no counts here"));
    let out = h.prompt_json(&[], "hi").await;
    let lines = out.json_lines();
    let result = lines.iter().find(|l| l["type"] == "result").expect("a result line");
    assert!(result["usage"].is_null(), "unknown, not zero: {result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_exceeded_error_compacts_and_the_turn_succeeds() {
    let h = Harness::new().await;
    h.llm.set_quirks(Quirks::llama_cpp_python());
    // Two earlier turns: something to summarise.
    h.llm.push(Reply::text("Noted, Ada."));
    let conversation = h.prompt_json(&[], "My name is Ada.").await.conversation_id();
    h.llm.push(Reply::text("Blue it is."));
    h.prompt_json(&["--conversation", &conversation], "My favourite colour is blue.").await;
    // The server's context turns out smaller than configured (llama-server's words).
    let body = json!({"error": {"message": "the request exceeds the available context size, try increasing it"}});
    h.llm.push(Reply::HttpError { status: 400, retry_after: None, body: body.to_string() });
    h.llm.push(Reply::text("The user is Ada; she likes blue."));
    h.llm.push(Reply::text("You are Ada, and you like blue."));
    let out = h.prompt_json(&["--conversation", &conversation], "Who am I?").await;
    let lines = out.json_lines();
    let result = lines.iter().find(|l| l["type"] == "result").expect("a result line");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["result"], "You are Ada, and you like blue.");

    let last = h.llm.requests().pop().unwrap();
    assert!(last.system_prompt().contains("The user is Ada; she likes blue."), "the summary stands in");
    let said: Vec<String> =
        last.messages().iter().filter(|m| m["role"] == "user").map(|m| m["content"].to_string()).collect();
    assert_eq!(said, ["\"Who am I?\""], "the older turns were summarised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_compares_the_servers_context_with_the_configured_window() {
    let mut h = Harness::new().await;
    let out = h.run(&["check"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("Model context: the server does not say"), "{}", out.stdout);

    // llama.cpp's server says what it runs with.
    h.llm.set_context_size(Some(4096));
    h.set("SWITCHBOARD_LLM__CONTEXT_WINDOW", "32768");
    let out = h.run(&["check"]).await;
    assert!(
        out.stdout.contains("Model context: 4096 tokens, the server says; llm.context_window is 32768: set it to 4096"),
        "{}",
        out.stdout
    );
    h.set("SWITCHBOARD_LLM__CONTEXT_WINDOW", "4096");
    let out = h.run(&["check"]).await;
    assert!(
        out.stdout.contains("Model context: 4096 tokens, the server says (llm.context_window 4096)"),
        "{}",
        out.stdout
    );
}
