//! `switchboard prompt` end to end against the fake OpenAI-compatible server.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, MODEL};
use serde_json::json;
use switchboard_fakes::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_one_shot_prints_the_final_reply() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_LLM__API_KEY", "sk-test-0123");
    h.llm.push(Reply::chunks(["Hel", "lo, ", "world"]));
    let out = h.run(&["prompt", "hi there"]).await;
    out.assert_ok();
    assert_eq!(out.stdout, "Hello, world\n");
    assert_eq!(out.stderr, "");

    let req = &h.llm.requests()[0];
    assert!(req.is_stream());
    assert_eq!(req.model(), Some(MODEL));
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-0123"));
    assert_eq!(req.last_user_text(), "hi there");
    let system = req.system_prompt();
    assert!(system.contains("<memory_blocks>") && system.contains("<persona>"), "{system}");
    for tool in ["memory_insert", "memory_replace", "memory_rethink", "AskUserQuestion"] {
        assert!(req.tool_names().iter().any(|t| t == tool), "{tool} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_json_prints_every_message_from_init_to_result() {
    let h = Harness::new().await;
    h.llm.push(Reply::reasoning("Let me think.", "Four."));
    let out = h.prompt_json(&[], "What is 2+2?").await;
    let lines = out.json_lines();
    let init = &lines[0];
    assert_eq!(init["type"], "init");
    for field in ["agent_id", "conversation_id", "session_id"] {
        assert!(init[field].as_str().is_some_and(|v| !v.is_empty()), "init lacks {field}: {init}");
    }
    assert!(init["agent_id"].as_str().unwrap().starts_with("agent-"));
    assert!(init["conversation_id"].as_str().unwrap().starts_with("conv-"));
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"stream_event"), "{types:?}");
    assert!(types.contains(&"reasoning"), "{types:?}");
    let assistant = lines.iter().find(|l| l["type"] == "assistant").unwrap();
    assert_eq!(assistant["content"], "Four.");
    let reasoning = lines.iter().find(|l| l["type"] == "reasoning").unwrap();
    assert_eq!(reasoning["content"], "Let me think.");
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["success"], true);
    assert_eq!(result["result"], "Four.");
    assert_eq!(result["stop_reason"], "end_turn");
    assert!(result["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_turn_carries_the_first() {
    let h = Harness::new().await;
    h.llm.push(Reply::text("Nice to meet you, Ada."));
    let first = h.prompt_json(&[], "My name is Ada.").await;
    let conversation = first.conversation_id();

    h.llm.push(Reply::text("You are Ada."));
    let second = h.prompt_json(&["--conversation", &conversation], "Who am I?").await;
    assert_eq!(second.conversation_id(), conversation);

    let messages = h.llm.requests()[1].messages();
    let turns: Vec<(String, String)> = messages
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or("").to_string()))
        .collect();
    let expected = [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "Who am I?")];
    assert_eq!(turns, expected.map(|(r, c)| (r.to_string(), c.to_string())));

    // Without --conversation, a prompt starts fresh.
    h.llm.push(Reply::text("Hello."));
    h.prompt_json(&[], "Fresh start").await;
    let fresh = h.llm.requests()[2].messages();
    assert_eq!(fresh.iter().filter(|m| m["role"] != "system").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_edit_in_one_conversation_reaches_the_next_system_prompt_of_another() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call(
        "memory_insert",
        json!({"label": "human", "new_str": "The person is called Ada and likes tea."}),
    ));
    h.llm.push(Reply::text("I'll remember that."));
    let first = h.prompt_json(&[], "I'm Ada, I like tea.").await;

    let reqs = h.llm.requests();
    let results = reqs[1].tool_results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.contains("was updated"), "{results:?}");
    let lines = first.json_lines();
    assert!(lines.iter().any(|l| l["type"] == "tool_call" && l["tool_name"] == "memory_insert"));
    assert!(lines.iter().any(|l| l["type"] == "tool_result" && l["is_error"] == false));

    h.llm.push(Reply::text("Hi Ada!"));
    let second = h.prompt_json(&[], "Hello again").await;
    assert_ne!(second.conversation_id(), first.conversation_id());
    let system = h.llm.requests()[2].system_prompt();
    assert!(system.contains("The person is called Ada and likes tea."), "{system}");

    let agent = first.json_lines()[0]["agent_id"].as_str().unwrap().to_string();
    let memory = h.run(&["agent", "memory", "get", &agent, "human"]).await;
    memory.assert_ok();
    assert_eq!(memory.stdout.trim(), "The person is called Ada and likes tea.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tool_calls_all_run_and_all_results_go_back() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_calls(vec![
        ("memory_insert", json!({"label": "human", "new_str": "Lives in Oslo."})),
        ("memory_rethink", json!({"label": "project", "new_memory": "Building switchboard."})),
    ]));
    h.llm.push(Reply::text("Both saved."));
    let out = h.prompt_json(&[], "I live in Oslo and build switchboard").await;
    let results = h.llm.requests()[1].tool_results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|(_, content)| content.contains("was updated")), "{results:?}");
    let system = {
        h.llm.push(Reply::text("ok"));
        h.prompt_json(&[], "next").await;
        h.llm.requests()[2].system_prompt()
    };
    assert!(
        system.contains("Lives in Oslo.") && system.contains("<project>") && system.contains("Building switchboard.")
    );
    assert_eq!(out.json_lines().iter().filter(|l| l["type"] == "tool_call").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_memory_edit_is_a_tool_error_the_agent_sees() {
    let h = Harness::new().await;
    h.llm.push(Reply::tool_call("memory_replace", json!({"label": "human", "old_str": "not there", "new_str": "x"})));
    h.llm.push(Reply::tool_call("memory_rethink", json!({"label": "human", "new_memory": "y".repeat(6000)})));
    h.llm.push(Reply::text("Sorry."));
    h.prompt_json(&[], "remember").await;
    let reqs = h.llm.requests();
    assert!(reqs[1].tool_results()[0].1.contains("not found"), "{:?}", reqs[1].tool_results());
    assert!(reqs[2].tool_results().last().unwrap().1.contains("limit of 5000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_user_question_is_denied_with_guidance_to_ask_in_plain_text() {
    let h = Harness::new().await;
    let question = json!({"questions": [{"question": "Tea or coffee?", "options": [{"label": "Tea"}, {"label": "Coffee"}], "multiSelect": false}]});
    h.llm.push(Reply::tool_call("AskUserQuestion", question));
    h.llm.push(Reply::text("Do you prefer tea or coffee?"));
    let out = h.prompt_json(&[], "Pick a drink for me").await;
    let results = h.llm.requests()[1].tool_results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.contains("plain text"), "{results:?}");
    let lines = out.json_lines();
    let denial = lines.iter().find(|l| l["type"] == "tool_result").unwrap();
    assert_eq!(denial["is_error"], true);
    assert_eq!(lines.last().unwrap()["result"], "Do you prefer tea or coffee?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_success_is_retried_and_retry_after_is_honoured() {
    let h = Harness::new().await;
    h.llm.push(Reply::error(500));
    h.llm.push(Reply::text("Recovered."));
    let out = h.run(&["prompt", "hello"]).await;
    out.assert_ok();
    assert_eq!(out.stdout, "Recovered.\n");
    assert_eq!(h.llm.requests().len(), 2);

    h.llm.push(Reply::rate_limited(1));
    h.llm.push(Reply::text("After the wait."));
    let started = Instant::now();
    let out = h.run(&["prompt", "hello"]).await;
    out.assert_ok();
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After was not honoured");
    assert_eq!(out.stdout, "After the wait.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_by_max_retries() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_LLM__MAX_RETRIES", "1");
    for _ in 0..3 {
        h.llm.push(Reply::error(503));
    }
    let out = h.run(&["prompt", "hello"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(h.llm.requests().len(), 2);
    let stderr = out.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: the model endpoint answered HTTP 503"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_a_clear_error_and_a_non_zero_exit() {
    let mut h = Harness::new().await;
    let port = switchboard_fakes::free_port();
    h.set("SWITCHBOARD_LLM__BASE_URL", &format!("http://127.0.0.1:{port}/v1"));
    h.set("SWITCHBOARD_LLM__MAX_RETRIES", "1");
    let out = h.run(&["prompt", "hello"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    let stderr = out.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: the model endpoint http://127.0.0.1:") && stderr.contains("is not reachable"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sse_ends_the_turn_with_a_clear_error_and_the_next_turn_works() {
    let h = Harness::new().await;
    h.llm.push(Reply::Malformed { raw: "data: {\"choices\": [oops\n\n".into() });
    let out = h.run(&["prompt", "--output-format", "stream-json", "hello"]).await;
    assert_eq!(out.code, 1);
    let result = out.json_lines().pop().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["success"], false);
    assert_eq!(result["stop_reason"], "error");
    assert!(result["error"].as_str().unwrap().contains("malformed"), "{result}");
    assert!(out.stderr.contains("error: the model endpoint sent a malformed response"), "{}", out.stderr);
    // Malformed data is not retried: it would come back the same.
    assert_eq!(h.llm.requests().len(), 1);

    h.llm.push(Reply::text("Fine now."));
    let conversation = out.conversation_id();
    let next = h.run(&["prompt", "--conversation", &conversation, "again"]).await;
    next.assert_ok();
    assert_eq!(next.stdout, "Fine now.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_steps_bounds_the_agent_loop() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_AGENT__MAX_STEPS", "2");
    for i in 0..3 {
        h.llm.push(Reply::tool_call("memory_insert", json!({"label": "human", "new_str": format!("fact {i}")})));
    }
    let out = h.prompt_json(&[], "loop forever").await;
    let result = out.json_lines().pop().unwrap();
    assert_eq!(result["stop_reason"], "max_steps");
    assert_eq!(result["num_steps"], 2);
    assert_eq!(h.llm.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_empty_messages_are_refused_plainly() {
    let h = Harness::new().await;
    let out = h.run(&["prompt", "--conversation", "conv-missing", "hi"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.trim(), "error: there is no conversation conv-missing; see `switchboard conversation list`");
    let out = h.run(&["prompt", "--agent", "agent-missing", "hi"]).await;
    assert_eq!(out.stderr.trim(), "error: there is no agent agent-missing; see `switchboard agent list`");
    let out = h.run(&["prompt", "   "]).await;
    assert_eq!(out.stderr.trim(), "error: the message is empty");
    assert!(h.llm.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_optional_fields_is_asked_again_without_them() {
    let h = Harness::new().await;
    h.llm.push(Reply::HttpError {
        status: 400,
        retry_after: None,
        body: r#"{"error":{"message":"Unrecognized request argument supplied: stream_options"}}"#.into(),
    });
    h.llm.push(Reply::text("Works without them."));
    let out = h.run(&["prompt", "hello"]).await;
    out.assert_ok();
    assert_eq!(out.stdout, "Works without them.\n");
    let reqs = h.llm.requests();
    assert!(reqs[0].body().get("stream_options").is_some());
    assert!(reqs[1].body().get("stream_options").is_none() && reqs[1].body().get("parallel_tool_calls").is_none());
    assert_eq!(reqs[1].body()["stream"], true, "still streaming");
}
