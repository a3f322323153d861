//! The model client against servers that depart from OpenAI's behaviour, as the
//! fake reproduces them (llama-cpp-python's quirks, FastAPI error bodies, empty
//! replies, validation errors answered with HTTP 500).

mod common;

use common::Harness;
use serde_json::json;
use switchboard_fakes::{Quirks, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_round_trip_works_against_a_server_like_llama_cpp_python() {
    let h = Harness::new().await;
    h.llm.set_quirks(Quirks::llama_cpp_python());
    std::fs::create_dir_all(h.workdir()).unwrap();
    std::fs::write(h.workdir().join("notes.txt"), "hello from the file").unwrap();
    h.llm.push(Reply::tool_call("Read", json!({"path": "notes.txt"})));
    h.llm.push(Reply::text("The file says hello."));
    let out = h.run(&["prompt", "what does notes.txt say?"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("The file says hello."), "{}", out.stdout);

    let requests = h.llm.requests();
    for r in &requests {
        assert_eq!(r.body["tool_choice"], "auto", "tools are sent with tool_choice");
        let null = r.messages().iter().any(|m| m["role"] == "assistant" && m["content"].is_null());
        assert!(!null, "an assistant message's content is never null");
    }
    // Each model call: an empty stream first, then the same request not streamed.
    let streamed: Vec<bool> = requests.iter().map(|r| r.is_stream()).collect();
    assert_eq!(streamed, [true, false, true, false]);
    let result = requests[3].messages().into_iter().find(|m| m["role"] == "tool").expect("the tool's result");
    assert!(result["content"].as_str().unwrap().contains("hello from the file"), "{result}");
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
    assert!(!request.is_stream() && request.body.get("stream_options").is_none(), "{}", request.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fastapi_detail_error_shows_its_text_on_one_line() {
    let h = Harness::new().await;
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
    h.llm.push(Reply::chunks(Vec::<String>::new()));
    let out = h.run(&["prompt", "hi"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("empty reply"), "{}", out.stderr);
}
