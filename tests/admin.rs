//! `check`, `agent …` and configuration errors, end to end.

mod common;

use common::{Harness, MODEL};
use switchboard_fakes::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_the_endpoint_and_the_configured_model() {
    let mut h = Harness::new().await;
    h.set("SWITCHBOARD_LLM__API_KEY", "sk-very-secret-value");
    h.llm.set_models(vec!["other".into(), MODEL.into()]);
    let out = h.run(&["check"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("Configuration: valid"), "{}", out.stdout);
    assert!(out.stdout.contains("reachable, 2 model(s) listed"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("Model {MODEL:?}: listed")));
    assert!(out.stdout.contains("llm.api_key:      set"));
    assert!(!out.stdout.contains("sk-very-secret-value") && !out.stderr.contains("sk-very-secret-value"));

    h.llm.set_models(vec![format!("{MODEL}:latest")]);
    h.run(&["check"]).await.assert_ok();

    // What the data directory holds, once there is something.
    h.llm.push(Reply::text("hello"));
    h.run(&["prompt", "hi"]).await.assert_ok();
    let out = h.run(&["check"]).await;
    assert!(out.stdout.contains(" on disk; largest parts of the store:"), "{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l.trim_start().starts_with("entries ") && l.contains("records")),
        "{}",
        out.stdout
    );

    h.llm.set_models(vec!["llama3".into()]);
    let out = h.run(&["check"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("NOT listed by the endpoint (it lists: llama3)"), "{}", out.stdout);

    h.set("SWITCHBOARD_LLM__BASE_URL", "http://127.0.0.1:1/v1");
    let out = h.run(&["check"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("NOT usable: the model endpoint http://127.0.0.1:1/v1 is not reachable"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configuration_problem_is_listed_with_where_it_came_from() {
    let mut h = Harness::new().await;
    let file = h.path("switchboard.toml");
    common::write(&file, "[llm]\napi_key = \"sk-in-file\"\nmax_retries = \"many\"\n[agent]\npermission_mode = \"yolo\"\ncolour = \"blue\"\n");
    h.set("SWITCHBOARD_AGENT__COMPACTION_THRESHOLD", "3");
    // ./switchboard.toml is found without --config.
    let out = h.run(&["check"]).await;
    assert_eq!(out.code, 1);
    let text = &out.stdout;
    assert!(text.contains("the configuration has 5 problems"), "{text}");
    assert!(text.contains("llm.api_key (file switchboard.toml): is a secret and may only be set in the environment (SWITCHBOARD_LLM__API_KEY)"), "{text}");
    assert!(text.contains("llm.max_retries (file switchboard.toml): expected"), "{text}");
    assert!(
        text.contains(
            "agent.permission_mode (file switchboard.toml): must be one of standard, acceptEdits, memory, unrestricted"
        ),
        "{text}"
    );
    assert!(text.contains("agent.colour (file switchboard.toml): unknown key"), "{text}");
    assert!(
        text.contains("agent.compaction_threshold (environment variable SWITCHBOARD_AGENT__COMPACTION_THRESHOLD)"),
        "{text}"
    );
    assert!(!text.contains("sk-in-file"));

    // The same problems stop every other command before it does anything.
    let out = h.run(&["prompt", "hi"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: the configuration has 5 problems"), "{}", out.stderr);
    assert!(h.llm.requests().is_empty());

    let out = h.run(&["--config", "missing.toml", "check"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("file missing.toml: cannot read the config file"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_sets_the_agent_and_the_environment_overrides_it() {
    let h = Harness::new().await;
    let file = h.path("custom.toml");
    common::write(
        &file,
        "[llm]\nmodel = \"ignored-because-env-wins\"\n[agent]\nname = \"Marvin\"\nsystem_prompt = \"You are Marvin, a gloomy robot.\"\nsystem_prompt_append = \"Sigh often.\"\npersona = \"Gloomy.\"\n",
    );
    h.llm.push(Reply::text("Sigh."));
    let out = h.run(&["--config", file.to_str().unwrap(), "prompt", "hello"]).await;
    out.assert_ok();
    let req = &h.llm.requests()[0];
    assert_eq!(req.model(), Some(MODEL));
    let system = req.system_prompt();
    assert!(system.starts_with("You are Marvin, a gloomy robot.\n\nSigh often."), "{system}");
    assert!(system.contains("Gloomy."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_created_listed_shown_edited_and_deleted() {
    let h = Harness::new().await;
    let created =
        h.run(&["agent", "create", "--name", "Helper", "--persona", "Kind.", "--system-prompt", "minimal"]).await;
    created.assert_ok();
    let id = created.stdout.trim().to_string();
    assert!(id.starts_with("agent-"));

    let list = h.run(&["agent", "list"]).await;
    assert!(list.stdout.contains(&id) && list.stdout.contains("Helper"), "{}", list.stdout);

    h.run(&["agent", "memory", "set", &id, "project", "switchboard"]).await.assert_ok();
    let shown = h.run(&["agent", "show", &id]).await;
    shown.assert_ok();
    assert!(shown.stdout.contains("persona (5/5000 chars): Kind."), "{}", shown.stdout);
    assert!(shown.stdout.contains("project (11/5000 chars): switchboard"), "{}", shown.stdout);

    let too_long = "x".repeat(5001);
    let out = h.run(&["agent", "memory", "set", &id, "project", &too_long]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("over the 'project' block's limit of 5000"), "{}", out.stderr);

    // A prompt to this agent sees its memory.
    h.llm.push(Reply::text("ok"));
    h.run(&["prompt", "--agent", &id, "hi"]).await.assert_ok();
    assert!(h.llm.requests()[0].system_prompt().contains("switchboard"));

    h.run(&["agent", "delete", &id]).await.assert_ok();
    let out = h.run(&["agent", "show", &id]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(&format!("there is no agent {id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_in_use_or_damaged_is_refused_with_a_clear_message() {
    let h = Harness::new().await;
    {
        // Another process holds the data directory.
        let _held = switchboard::store::SqliteStore::open(&h.data_dir(), 8).unwrap();
        let out = h.run(&["agent", "list"]).await;
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("is in use by another switchboard process (pid "), "{}", out.stderr);
    }
    // Something else where the database should be.
    let broken = h.path("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join(switchboard::store::SQLITE_FILE), [0xA5u8; 8192]).unwrap();
    let out = h.run_with_env_data_dir(&broken, &["agent", "list"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(out.stderr.contains(&broken.display().to_string()), "{}", out.stderr);
}
