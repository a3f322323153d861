//! Start-up of an SDK session: the five spawn shapes (`letta-code-wire.md` §2.1)
//! resolved to an agent and a conversation, an agent created (and stored) when
//! asked, the session's permissions built, and the `system/init` line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::args::{BlockSpec, EngineArgs, SystemChoice, Target};
use super::external::Registered;
use super::permissions::{AskTheSdk, Waiting};
use super::Engine;
use crate::agent::embedded::tools;
use crate::agent::{AgentError, CreateAgentOptions, Session, SessionOptions};
use crate::config::Settings;
use crate::policy::{Policy, Tier, ASK_USER_QUESTION};
use crate::store::{AgentRecord, MemoryBlock, SystemPrompt, DEFAULT_BLOCK_LIMIT};

/// The chat and sender name SDK sessions are recorded under.
pub const SDK_CHAT: &str = "sdk";

/// A session ready to take turns: `init` has not been printed yet.
pub struct Started {
    pub session: Session,
    pub init: Value,
    /// Lines for the SDK, written by the session's one writer.
    pub out: mpsc::UnboundedSender<Value>,
    pub out_rx: mpsc::UnboundedReceiver<Value>,
    pub waiting: Waiting,
    /// Notes for stderr (flags without effect here).
    pub notes: Vec<String>,
    pub model: String,
    pub tools: Vec<String>,
    /// `--include-partial-messages`.
    pub partial: bool,
    /// The tools the program registers.
    pub external: Arc<Registered>,
}

/// Resolves the target, creating what it asks for; `Err` is the one line the SDK
/// shows when start-up fails (an unknown conversation, a workspace holding the store).
pub async fn start(
    engine: &Engine,
    args: &EngineArgs,
    cwd: &Path,
    client_files: &[PathBuf],
) -> Result<Started, String> {
    check_workspace(engine, cwd, client_files)?;
    let backend = &engine.backend;
    let mut notes: Vec<String> = args.ignored.iter().map(|f| format!("{f} has no effect in switchboard")).collect();
    let (out, out_rx) = mpsc::unbounded_channel();
    let waiting = Waiting::default();
    let external = Arc::new(Registered::new(out.clone(), waiting.clone()));
    let options = session_options(engine, args, cwd, out.clone(), waiting.clone(), external.clone());
    let creating = matches!(args.target, Target::NewAgent);
    if !creating && (args.memory_blocks.is_some() || args.init_blocks.is_some() || !args.block_values.is_empty()) {
        notes.push("memory flags only apply when an agent is created; they were ignored".into());
    }
    if !creating && matches!(args.system, Some(SystemChoice::Custom(_))) {
        notes.push("a custom system prompt is chosen when an agent is created; it was left as it is".into());
    }
    let failed = |e: AgentError| match e {
        AgentError::NotFound { kind, id } => format!("{} {id} not found", capitalized(kind)),
        other => other.to_string(),
    };
    let session = match &args.target {
        Target::Conversation(id) => {
            if !id.starts_with("conv-") {
                return Err(format!("Conversation {id} not found (conversation ids start with conv-)"));
            }
            backend.resume_session(id, options).await.map_err(failed)?
        }
        Target::AgentDefault(agent) => {
            if agent.starts_with("conv-") {
                return Err(format!("Agent {agent} not found ({agent} is a conversation id)"));
            }
            backend.resume_session(agent, options).await.map_err(failed)?
        }
        Target::AgentNew(agent) => backend.create_session(agent, options).await.map_err(failed)?,
        Target::NewAgent => {
            let created = backend.create_agent(creation(args, &mut notes)?).await.map_err(failed)?;
            backend.resume_session(&created.agent.id, options).await.map_err(failed)?
        }
        Target::New => {
            let agent = backend.default_agent().await.map_err(failed)?;
            backend.create_session(&agent.id, options).await.map_err(failed)?
        }
        Target::DefaultAgentDefault => {
            let agent = backend.default_agent().await.map_err(failed)?;
            backend.resume_session(&agent.id, options).await.map_err(failed)?
        }
    };
    let mut agent = backend.agent(session.agent_id()).await.map_err(failed)?.agent;
    if let Some(model) = args.model.as_ref().filter(|m| agent.model.as_ref() != Some(m)) {
        agent = backend.set_model(&agent.id, Some(model.clone())).await.map_err(failed)?;
    }
    // A preset given at session time is kept on the agent, as the SDK documents
    // (every SDK preset is switchboard's one full preset).
    if let (false, Some(SystemChoice::Preset(_))) = (creating, &args.system) {
        let preset = SystemPrompt::from_setting("default", args.system_append.as_deref().unwrap_or(""));
        if agent.system_prompt != preset {
            agent = backend.set_system_prompt(&agent.id, preset).await.map_err(failed)?;
        }
    }
    let model = agent.model.clone().unwrap_or_else(|| engine.settings.llm.model.clone());
    let tools = offered_tools(args);
    let init = init_line(engine, args, cwd, &session, &agent, &model, &tools);
    Ok(Started { session, init, out, out_rx, waiting, notes, model, tools, partial: args.partial, external })
}

/// The tools `system/init` lists: all but `AskUserQuestion` and those disallowed by name.
fn offered_tools(args: &EngineArgs) -> Vec<String> {
    tools::names().into_iter().filter(|t| t != ASK_USER_QUESTION && !args.disallowed_tools.contains(t)).collect()
}

fn init_line(
    engine: &Engine,
    args: &EngineArgs,
    cwd: &Path,
    session: &Session,
    agent: &AgentRecord,
    model: &str,
    tools: &[String],
) -> Value {
    let mode = args.mode.map_or_else(|| mode_name(engine), |m| m.wire_name().to_string());
    let mut init = json!({
        "type": "system",
        "subtype": "init",
        "agent_id": agent.id,
        "session_id": session.session_id(),
        "conversation_id": session.conversation_id(),
        "model": model,
        "tools": tools,
        "cwd": cwd.display().to_string(),
        "permission_mode": mode,
        "memfs_enabled": false,
        "skill_sources": [],
        "system_info_reminder_enabled": !args.no_system_info_reminder,
        "uuid": format!("init-{}", agent.id),
    });
    let r = &args.reflection;
    for (key, value) in [
        ("reflection_trigger", r.trigger.clone().map(Value::from)),
        ("reflection_behavior", r.behavior.clone().map(Value::from)),
        ("reflection_step_count", r.step_count.map(Value::from)),
    ] {
        if let Some(value) = value {
            init[key] = value;
        }
    }
    init
}

fn mode_name(engine: &Engine) -> String {
    use crate::config::PermissionMode as M;
    match engine.settings.agent.permission_mode {
        M::Standard => "default",
        M::AcceptEdits => "acceptEdits",
        M::Memory => "memory",
        M::Unrestricted => "bypassPermissions",
        M::Plan => "plan",
        M::Strict => "strict",
    }
    .to_string()
}

/// The operator's session, working in `cwd`, judged by the configuration with the
/// flags' mode and tool lists, asking the SDK what a person would be asked.
fn session_options(
    engine: &Engine,
    args: &EngineArgs,
    cwd: &Path,
    out: mpsc::UnboundedSender<Value>,
    waiting: Waiting,
    external: Arc<Registered>,
) -> SessionOptions {
    let mut settings = Settings::clone(&engine.settings);
    settings.agent.workdir = cwd.to_path_buf();
    if let Some(mode) = args.mode {
        settings.agent.permission_mode = mode.policy_mode();
    }
    settings.agent.allowed_tools.extend(args.allowed_tools.iter().cloned());
    settings.agent.disallowed_tools.extend(args.disallowed_tools.iter().cloned());
    let classes = tools::specs().into_iter().map(|t| (t.name.to_string(), t.class)).collect();
    let policy = Arc::new(Policy::new(&settings, engine.store.clone(), classes));
    SessionOptions {
        can_use_tool: Some(Arc::new(AskTheSdk { policy, out, waiting })),
        chat: Some(SDK_CHAT.into()),
        sender: Some(SDK_CHAT.into()),
        tier: Tier::Admin,
        in_group: false,
        workdir: Some(cwd.to_path_buf()),
        external_tools: Some(external),
        fence: None,
    }
}

/// What `--new-agent` and its memory and prompt flags create.
fn creation(args: &EngineArgs, notes: &mut Vec<String>) -> Result<CreateAgentOptions, String> {
    let mut options = CreateAgentOptions { model: args.model.clone(), ..Default::default() };
    match &args.system {
        // switchboard has one full preset; every SDK preset name means it.
        Some(SystemChoice::Preset(_)) => options.system_prompt = Some("default".into()),
        Some(SystemChoice::Custom(text)) => options.system_prompt = Some(text.clone()),
        None => {}
    }
    options.system_prompt_append = args.system_append.clone();
    if let Some(names) = &args.init_blocks {
        let (known, unknown): (Vec<String>, Vec<String>) =
            names.iter().cloned().partition(|n| n == "persona" || n == "human");
        if !unknown.is_empty() {
            notes.push(format!("switchboard has no preset blocks named {}; they were not created", unknown.join(", ")));
        }
        options.default_blocks = Some(known);
    }
    if let Some(blocks) = &args.memory_blocks {
        // Custom blocks replace the presets, as the SDK says.
        options.default_blocks.get_or_insert_with(Vec::new);
        for block in blocks {
            match block {
                BlockSpec::New { label, value, description, limit } => options.memory.push(MemoryBlock {
                    label: label.clone(),
                    value: value.clone(),
                    description: description.clone().unwrap_or_default(),
                    limit: limit.unwrap_or(DEFAULT_BLOCK_LIMIT),
                    read_only: false,
                }),
                BlockSpec::Existing { block_id } => {
                    return Err(format!(
                        "memory block {block_id} cannot be attached: switchboard has no shared blocks (give {{label, value}} instead)"
                    ))
                }
            }
        }
    }
    for (label, value) in &args.block_values {
        match label.as_str() {
            "persona" => options.persona = Some(value.clone()),
            "human" => options.human = Some(value.clone()),
            _ => match options.memory.iter_mut().find(|b| &b.label == label) {
                Some(block) => block.value = value.clone(),
                None => options.memory.push(MemoryBlock::new(label, value, "")),
            },
        }
        // A value given for a default block creates it, whatever --init-blocks said.
        if let Some(wanted) = options.default_blocks.as_mut().filter(|w| !w.contains(label)) {
            if label == "persona" || label == "human" {
                wanted.push(label.clone());
            }
        }
    }
    Ok(options)
}

/// Refuses a workspace that would put switchboard's own files in the tools' reach:
/// the data directory, the engine's configuration file and the one the session's
/// process read (`client_files`). Paths are compared with symlinks resolved.
fn check_workspace(engine: &Engine, cwd: &Path, client_files: &[PathBuf]) -> Result<(), String> {
    let real = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
    };
    let cwd = real(cwd);
    let data_dir = real(&engine.settings.data_dir);
    for hidden in engine.settings.daemon_paths().iter().chain(client_files) {
        let hidden: PathBuf = real(hidden);
        if hidden.starts_with(&cwd) || (hidden == data_dir && cwd.starts_with(&data_dir)) {
            return Err(format!(
                "the working directory {} contains switchboard's own files ({}); start the session in another directory, or set SWITCHBOARD_DATA_DIR to a directory outside it",
                cwd.display(),
                hidden.display()
            ));
        }
    }
    Ok(())
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
