//! `switchboard check`: validates the configuration, then probes the model endpoint.

use std::path::Path;

use switchboard::admin::LARGEST_SHOWN;
use switchboard::agent::embedded::llm::LlmClient;
use switchboard::channels::REGISTERED;
use switchboard::config::StoreKind;
use switchboard::config::{self, ConfigSource, Settings};
use switchboard::control::{self, Request};
use switchboard::store::postgres::{describe, PgStore};
use switchboard::store::{human_bytes, render_sizes, StoreError};

use super::EXIT_FAILURE;

/// How long `check` waits for a channel's platform to answer its probe.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The data directory's size on disk and the store's largest parts (asked of a
/// running daemon when it holds the store); for PostgreSQL, whether the database
/// answers. `false` when the store cannot be used.
async fn storage(s: &Settings) -> bool {
    if s.store.kind == StoreKind::Postgres {
        return database(s).await;
    }
    if !s.data_dir.exists() {
        println!("Data directory: not created yet");
        return true;
    }
    let bytes: u64 = walkdir::WalkDir::new(&s.data_dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    println!(
        "Data directory ({} store): {} on disk; largest parts of the store:",
        s.store.kind.name(),
        human_bytes(bytes)
    );
    match switchboard::store::open(s) {
        Ok(store) => match store.sizes() {
            Ok(sizes) => print!("{}", render_sizes(&sizes, LARGEST_SHOWN)),
            Err(e) => println!("  cannot be read: {e}"),
        },
        Err(StoreError::Locked { .. }) => match control::call(&s.data_dir, &Request::StoreSizes).await {
            Ok(answer) => print!("{}{}", answer.stdout, answer.stderr),
            Err(_) => println!("  unknown: another process holds the store and does not answer"),
        },
        Err(e) => println!("  cannot be opened: {e}"),
    }
    true
}

/// Whether the PostgreSQL store answers, and its largest parts (read only: the
/// database is neither taken nor changed).
async fn database(s: &Settings) -> bool {
    let options = s.store.postgres.clone();
    let probed = tokio::task::spawn_blocking(move || PgStore::probe(&options)).await;
    let database = describe(&s.store.postgres.url);
    match probed {
        Ok(Ok(probe)) => {
            let schema = match probe.version {
                0 => "not set up yet (serve creates it)".to_string(),
                n => format!("schema {n}"),
            };
            let user = if probe.in_use { "in use by a running switchboard" } else { "not in use" };
            println!("Store: PostgreSQL, {database}: reachable, {schema}, {user}");
            if !probe.sizes.is_empty() {
                println!("  largest parts:");
                print!("{}", render_sizes(&probe.sizes, LARGEST_SHOWN));
            }
            true
        }
        Ok(Err(e)) => {
            println!("Store: PostgreSQL: NOT usable: {e}");
            false
        }
        Err(e) => {
            println!("Store: PostgreSQL: NOT usable: {e}");
            false
        }
    }
}

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<i32> {
    let source = ConfigSource::from_process(config_path);
    match &source.file {
        Some(path) => println!("Configuration file: {}", path.display()),
        None => println!("Configuration file: none (built-in defaults and the environment)"),
    }
    let loaded = match config::load(&source) {
        Ok(loaded) => loaded,
        Err(e) => {
            print!("{e}");
            return Ok(EXIT_FAILURE);
        }
    };
    let s = &loaded.settings;
    println!("Configuration: valid");
    println!("  data_dir:         {}", s.data_dir.display());
    println!("  llm.base_url:     {}", s.llm.base_url);
    println!("  llm.model:        {}", s.llm.model);
    println!("  llm.api_key:      {}", if s.llm.api_key.is_some() { "set (environment)" } else { "not set" });
    println!("  agent.name:       {}", s.agent.name);
    println!("  agent.permission: {:?}", s.agent.permission_mode);
    for section in &s.channels {
        let hint = REGISTERED.iter().find(|c| c.name == section.name).map_or("", |c| c.enable_hint);
        if !section.settings.enabled() {
            println!("Channel {}: not configured ({hint})", section.name);
            continue;
        }
        println!("Channel {}: configured", section.name);
        for (key, value) in section.settings.describe() {
            println!("  {}.{key}: {value}", section.name);
        }
        let access = &section.settings.common().access;
        println!(
            "  {}.dm_policy: {:?}, {} admin(s), {} allowed user(s)",
            section.name,
            access.dm_policy,
            access.admins.len(),
            access.allowed_users.len()
        );
        match section.settings.build(&[]) {
            Ok(channel) => match tokio::time::timeout(PROBE_TIMEOUT, channel.probe()).await {
                Ok(lines) => lines.iter().for_each(|l| println!("  {}: {l}", section.name)),
                Err(_) => println!("  {}: no answer from the platform within {PROBE_TIMEOUT:?}", section.name),
            },
            Err(e) => println!("  {}: {e}", section.name),
        }
        let approvers = s.policy.approvers.iter().any(|a| a.starts_with(&format!("{}:", section.name)));
        if access.admins.is_empty() && !approvers {
            println!(
                "  note: {} has no admins, so nobody there can decide tool requests (only `switchboard approvals`); add yourself to {}.admins",
                section.name, section.name
            );
        }
    }
    let store_usable = storage(s).await;
    let sandbox = switchboard::agent::embedded::tools::sandbox::Sandbox::new(&s.agent.workdir, &s.daemon_paths());
    println!("Tools: {}", sandbox.describe());
    if s.enabled_channels().next().is_none() {
        println!("No channel is configured: `switchboard serve` needs one (`chat` and `prompt` work without).");
    }

    let client = LlmClient::new(&s.llm);
    match client.list_models().await {
        Ok(models) => {
            println!("Model endpoint {}: reachable, {} model(s) listed", client.base_url(), models.len());
            // Ollama lists "llama3.2:latest" for a model requested as "llama3.2".
            let latest = format!("{}:latest", s.llm.model);
            if models.iter().any(|m| *m == s.llm.model || *m == latest) {
                println!("Model {:?}: listed", s.llm.model);
                match client.context_size(&s.llm.model).await {
                    Some(n) if n < s.llm.context_window => println!(
                        "Model context: {n} tokens, the server says; llm.context_window is {}: set it to {n} \
                         or less, or prompts will be refused before compaction starts",
                        s.llm.context_window
                    ),
                    Some(n) => println!(
                        "Model context: {n} tokens, the server says (llm.context_window {})",
                        s.llm.context_window
                    ),
                    None => println!(
                        "Model context: the server does not say; llm.context_window {} is assumed",
                        s.llm.context_window
                    ),
                }
                Ok(if store_usable { 0 } else { EXIT_FAILURE })
            } else {
                let shown: Vec<&str> = models.iter().take(10).map(String::as_str).collect();
                println!("Model {:?}: NOT listed by the endpoint (it lists: {})", s.llm.model, shown.join(", "));
                Ok(EXIT_FAILURE)
            }
        }
        Err(e) => {
            println!("Model endpoint {}: NOT usable: {e}", client.base_url());
            Ok(EXIT_FAILURE)
        }
    }
}
