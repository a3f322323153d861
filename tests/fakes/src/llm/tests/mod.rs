//! End-to-end tests of the fake LLM over real TCP connections.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{FakeLlm, FakeToolCall, Fallback, Gate, Reply};
use crate::test_client::{get, post_json, raw_request, send};

const CHAT: &str = "/v1/chat/completions";

fn chat_body(user: &str, stream: bool) -> Value {
    json!({
        "model": "test-model",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": user}
        ]
    })
}

/// Concatenates every `delta[field]` string of the streamed chunks.
fn concat_delta(chunks: &[Value], field: &str) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"][field].as_str()).collect()
}

#[tokio::test]
async fn streamed_text_arrives_in_chunks_and_ends_with_done() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Hello there, streaming world!"));

    let response = post_json(llm.addr(), CHAT, &chat_body("hi", true)).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    let chunks = response.sse_json();
    let content_chunks =
        chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|s| !s.is_empty())).count();
    assert_eq!(content_chunks, 3);
    assert_eq!(concat_delta(&chunks, "content"), "Hello there, streaming world!");

    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(first["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-fake-")));
    assert!(chunks.iter().all(|c| c["id"] == first["id"]));

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    // "Hello there, streaming world!" is 29 chars -> 8 tokens.
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    let prompt = usage["usage"]["prompt_tokens"].as_u64().unwrap_or_default();
    assert_eq!(usage["usage"]["total_tokens"], prompt + 8);
    assert_eq!(llm.pending_replies(), 0);
}

#[tokio::test]
async fn streamed_tool_call_arguments_reassemble_to_original_json() {
    let llm = FakeLlm::start().await;
    let weather = json!({"city": "Zürich", "units": "metric", "days": [1, 2]});
    let clock = json!({});
    llm.push(Reply::tool_calls(vec![("get_weather", weather.clone()), ("clock", clock.clone())]));

    let response = post_json(llm.addr(), CHAT, &chat_body("weather?", true)).await;
    let chunks = response.sse_json();

    let mut calls: Vec<(String, String, String, usize)> = Vec::new();
    for chunk in &chunks {
        for delta in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = delta["index"].as_u64().expect("tool call index") as usize;
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(index, calls.len(), "calls are opened in index order");
                let name = delta["function"]["name"].as_str().unwrap_or_default();
                calls.push((id.to_owned(), name.to_owned(), String::new(), 0));
            }
            let fragment = delta["function"]["arguments"].as_str().unwrap_or_default();
            if delta["id"].is_null() {
                calls[index].2.push_str(fragment);
                calls[index].3 += 1;
            }
        }
    }

    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1, "get_weather");
    assert_eq!(calls[1].1, "clock");
    assert_ne!(calls[0].0, calls[1].0);
    assert!(calls.iter().all(|c| c.0.starts_with("call_") && c.3 >= 2));
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).ok(), Some(weather));
    assert_eq!(serde_json::from_str::<Value>(&calls[1].2).ok(), Some(clock));
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn streamed_reasoning_uses_the_scripted_field() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::Reasoning {
        field: "reasoning",
        reasoning: vec!["think ".into(), "hard".into()],
        text: vec!["42".into()],
    });

    let chunks = post_json(llm.addr(), CHAT, &chat_body("answer?", true)).await.sse_json();

    assert_eq!(concat_delta(&chunks, "reasoning"), "think hard");
    assert_eq!(concat_delta(&chunks, "content"), "42");
    assert_eq!(concat_delta(&chunks, "reasoning_content"), "");
}

#[tokio::test]
async fn non_streaming_response_has_chat_completion_shape() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("plain answer"));
    let call = FakeToolCall { id: "call_fixed".into(), name: "search".into(), arguments: r#"{"q":"rust"}"#.into() };
    llm.push(Reply::ToolCalls { text: vec![], calls: vec![call] });

    let text = post_json(llm.addr(), CHAT, &chat_body("q1", false)).await;
    let tools = post_json(llm.addr(), CHAT, &chat_body("q2", false)).await;

    assert_eq!(text.status, 200);
    assert!(text.headers["content-type"].starts_with("application/json"));
    let body = text.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "plain answer");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let body = tools.json();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["id"], "call_fixed");
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "search");
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], r#"{"q":"rust"}"#);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn http_error_sets_status_body_and_retry_after() {
    let llm = FakeLlm::start().await;
    let body = r#"{"error":{"message":"slow down"}}"#;
    llm.push(Reply::HttpError { status: 429, retry_after: Some(7), body: body.into() });
    llm.push(Reply::error(503));

    let limited = post_json(llm.addr(), CHAT, &chat_body("a", true)).await;
    let unavailable = post_json(llm.addr(), CHAT, &chat_body("b", true)).await;

    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(limited.headers["content-type"], "application/json");
    assert_eq!(limited.body, body);
    assert_eq!(unavailable.status, 503);
    assert!(!unavailable.headers.contains_key("retry-after"));
    assert_eq!(unavailable.json()["error"]["code"], 503);
}

#[tokio::test]
async fn empty_script_falls_back_to_error_by_default_then_echo() {
    let llm = FakeLlm::start().await;

    let error = post_json(llm.addr(), CHAT, &chat_body("anyone?", true)).await;
    llm.set_fallback(Fallback::Echo);
    let mut body = chat_body("ignored", true);
    body["messages"] = json!([
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "repeat me"}]}
    ]);
    let echo = post_json(llm.addr(), CHAT, &body).await;

    assert_eq!(error.status, 500);
    assert_eq!(error.json(), json!({"error": {"message": "fake llm: no scripted reply"}}));
    assert_eq!(echo.status, 200);
    assert_eq!(concat_delta(&echo.sse_json(), "content"), "echo: repeat me");
}

#[tokio::test]
async fn replies_are_served_in_fifo_order() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::chunks(["one"]));
    llm.push(Reply::chunks(["tw", "o"]));
    assert_eq!(llm.pending_replies(), 2);

    let first = post_json(llm.addr(), CHAT, &chat_body("1", false)).await.json();
    let second = post_json(llm.addr(), CHAT, &chat_body("2", true)).await.sse_json();

    assert_eq!(first["choices"][0]["message"]["content"], "one");
    assert_eq!(concat_delta(&second, "content"), "two");
    assert_eq!(llm.pending_replies(), 0);
}

#[tokio::test]
async fn requests_record_path_lowercase_headers_and_body() {
    let llm = FakeLlm::start().await;
    llm.set_fallback(Fallback::Echo);
    let mut body = chat_body("hello", true);
    body["tools"] = json!([{"type": "function", "function": {"name": "remember", "parameters": {}}}]);
    let headers = [("Authorization", "Bearer sk-test"), ("X-Trace-ID", "abc123")];

    send(llm.addr(), "POST", CHAT, &headers, &body.to_string()).await;
    post_json(llm.addr(), "/chat/completions", &chat_body("no prefix", false)).await;
    let rejected = send(llm.addr(), "POST", CHAT, &[], "this is not json").await;

    let requests = llm.wait_for_requests(3, Duration::from_secs(5)).await;
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.path, CHAT);
    assert_eq!(first.headers["authorization"], "Bearer sk-test");
    assert_eq!(first.headers["x-trace-id"], "abc123");
    assert_eq!(first.header("X-Trace-Id"), Some("abc123"));
    assert_eq!(first.body(), &body);
    assert_eq!(first.system_prompt(), "You are terse.");
    assert_eq!(first.last_user_text(), "hello");
    assert_eq!(first.tool_names(), vec!["remember"]);
    assert_eq!(requests[1].path, "/chat/completions");
    assert_eq!(requests[1].last_user_text(), "no prefix");
    assert_eq!(rejected.status, 400);
    assert!(rejected.json()["error"]["message"].as_str().is_some_and(|m| m.contains("not JSON")));
    assert_eq!(requests[2].body(), &Value::String("this is not json".into()));
}

#[tokio::test]
async fn models_endpoint_lists_configured_models_and_is_not_recorded() {
    let llm = FakeLlm::start().await;

    let default = get(llm.addr(), "/v1/models").await.json();
    llm.set_models(vec!["alpha".into(), "beta".into()]);
    let custom = get(llm.addr(), "/models").await.json();

    assert_eq!(default["object"], "list");
    assert_eq!(default["data"][0]["id"], "fake-model");
    assert_eq!(default["data"][0]["object"], "model");
    assert_eq!(default["data"][0]["owned_by"], "fake");
    let ids: Vec<&str> = custom["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec!["alpha", "beta"]);
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn malformed_reply_sends_raw_body() {
    let llm = FakeLlm::start().await;
    let raw = "data: {not json\n\ndata: [DONE]\n\n";
    llm.push(Reply::Malformed { raw: raw.into() });

    let response = post_json(llm.addr(), CHAT, &chat_body("x", true)).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    assert_eq!(response.body, raw);
}

#[tokio::test]
async fn delay_and_chunk_delay_slow_the_response_down() {
    let llm = FakeLlm::start().await;
    llm.set_chunk_delay(Duration::from_millis(20));
    llm.push(Reply::text("abc").delayed(Duration::from_millis(100)));

    let started = Instant::now();
    let response = post_json(llm.addr(), CHAT, &chat_body("x", true)).await;
    let elapsed = started.elapsed();

    // role + 3 content + finish + usage + [DONE] = 7 events, 6 gaps of 20ms.
    assert_eq!(response.sse_data().len(), 7);
    assert!(elapsed >= Duration::from_millis(100 + 6 * 20), "took {elapsed:?}");
    assert_eq!(concat_delta(&response.sse_json(), "content"), "abc");
}

/// Reads from `stream` until what was read holds `marker` and the end of its
/// line (so a held stream's next read starts at a new event).
async fn read_until(stream: &mut TcpStream, seen: &mut String, marker: &str) {
    let mut buf = [0u8; 4096];
    while !seen.find(marker).is_some_and(|at| seen[at..].contains('\n')) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {marker:?} within 5 s; read so far: {seen}"))
            .expect("read");
        assert!(n > 0, "closed before {marker:?}; read so far: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn a_held_stream_sends_each_part_only_once_its_gate_opens() {
    let llm = FakeLlm::start().await;
    let (first, second) = (Gate::new(), Gate::new());
    llm.push(Reply::chunks(["alpha", "bravo", "charlie"]).held_after(1, &first).held_after(2, &second));
    let mut stream = TcpStream::connect(llm.addr()).await.expect("connect");
    let request = raw_request("POST", CHAT, &[], &chat_body("x", true).to_string());
    stream.write_all(request.as_bytes()).await.expect("write");

    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "alpha").await;
    let mut buf = [0u8; 4096];
    let held = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(held.is_err(), "nothing after the first delta while its gate is shut: {held:?}");

    first.open();
    read_until(&mut stream, &mut seen, "bravo").await;
    let held = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(held.is_err(), "nothing after the second delta while its gate is shut: {held:?}");
    assert!(!seen.contains("charlie"));

    second.open();
    read_until(&mut stream, &mut seen, "[DONE]").await;
    let order = ["alpha", "bravo", "charlie", "\"finish_reason\":\"stop\"", "[DONE]"].map(|m| seen.find(m));
    assert!(order.iter().all(Option::is_some) && order.is_sorted(), "in stream order: {seen}");
}

#[tokio::test]
async fn hang_keeps_connection_open_until_server_is_dropped() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::Hang);
    let mut stream = TcpStream::connect(llm.addr()).await.expect("connect");
    let request = raw_request("POST", CHAT, &[], &chat_body("x", true).to_string());
    stream.write_all(request.as_bytes()).await.expect("write");
    llm.wait_for_requests(1, Duration::from_secs(5)).await;

    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(early.is_err(), "hung request must not get a response");

    drop(llm);
    let after_drop = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("connection closes once the server is dropped");
    assert!(matches!(after_drop, Ok(0) | Err(_)), "no response bytes: {after_drop:?}");
}

#[tokio::test]
#[should_panic(expected = "timed out")]
async fn wait_for_requests_panics_on_timeout() {
    let llm = FakeLlm::start().await;
    llm.wait_for_requests(1, Duration::from_millis(50)).await;
}
