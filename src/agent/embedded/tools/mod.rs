//! The tools the embedded agent can call: their schemas and classes (as the model and
//! the policy see them) and how each runs. Every call has passed `can_use_tool` first.

mod ask;
mod bash;
mod conversation_search;
mod files;
pub mod memory;
pub mod sandbox;
mod search;
mod web;
mod workdir;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::llm::Tools;
pub use crate::policy::ToolClass;
use crate::store::Store;
pub use web::WebOptions;
pub use workdir::Workdir;

/// A tool as the model sees it, with the class the policy judges it by.
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON schema of the arguments.
    pub parameters: Value,
    pub class: ToolClass,
}

pub struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
    /// Other conversations whose messages `content` shows (a search across the
    /// agent's conversations): whoever wrote there is now read in this one.
    pub read_from: Vec<String>,
    /// `content` shows words from outside every conversation, by anyone (a
    /// fetched page): read in this one as a guest's are.
    pub from_outside: bool,
}

impl ToolOutcome {
    pub fn ok(content: impl Into<String>) -> Self {
        ToolOutcome { content: content.into(), is_error: false, read_from: Vec::new(), from_outside: false }
    }

    pub fn error(content: impl Into<String>) -> Self {
        ToolOutcome { content: content.into(), is_error: true, read_from: Vec::new(), from_outside: false }
    }
}

/// What tools may touch.
pub struct ToolEnv {
    pub store: Arc<dyn Store>,
    pub agent_id: String,
    /// The calling conversation (what `conversation_search` searches).
    pub conversation_id: String,
    /// `conversation_search` may search every conversation of the agent.
    pub search_all: bool,
    /// Who asked, as recorded with memory edits.
    pub sender: Option<String>,
    pub tier: crate::policy::Tier,
    pub chat: Option<String>,
    /// Serialises read-modify-write of memory blocks across conversations.
    pub memory_lock: Arc<tokio::sync::Mutex<()>>,
    /// The directory file and shell tools are confined to.
    pub workdir: PathBuf,
    /// How the commands of Bash are confined.
    pub sandbox: sandbox::Sandbox,
    pub web: WebOptions,
}

/// Every tool, in the order the model sees them.
pub fn specs() -> Vec<ToolSpec> {
    let mut all = Vec::new();
    all.extend(files::specs());
    all.extend(search::specs());
    all.push(bash::spec());
    all.push(web::spec());
    all.extend(memory::specs());
    all.push(conversation_search::spec());
    all.push(ask::spec());
    all
}

/// Tool definitions in the OpenAI `tools` format (built once; every turn sends them).
pub fn definitions() -> &'static [Value] {
    static DEFINITIONS: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
        specs()
            .into_iter()
            .map(|s| {
                json!({"type": "function", "function": {"name": s.name, "description": s.description, "parameters": s.parameters}})
            })
            .collect()
    });
    &DEFINITIONS
}

/// [`definitions`] as a model request carries them, serialized once.
pub fn for_request() -> Tools {
    static TOOLS: std::sync::LazyLock<Tools> = std::sync::LazyLock::new(|| Tools::new(definitions()));
    TOOLS.clone()
}

/// Every tool's name, in the order the model sees them.
pub fn names() -> Vec<String> {
    static NAMES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| specs().iter().map(|s| s.name.to_string()).collect());
    NAMES.clone()
}

/// Runs blocking filesystem work off the async workers; `Err` is a message for the model.
async fn off_thread(what: &'static str, work: impl FnOnce() -> Result<String, String> + Send + 'static) -> ToolOutcome {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(text)) => ToolOutcome::ok(text),
        Ok(Err(message)) => ToolOutcome::error(message),
        Err(e) => {
            tracing::error!(error = crate::panics::task_failure(&e), tool = what, "a tool task failed");
            ToolOutcome::error(format!("The {what} failed unexpectedly; try again or use another approach."))
        }
    }
}

pub async fn run(env: &ToolEnv, name: &str, input: Value) -> ToolOutcome {
    if memory::specs().iter().any(|s| s.name == name) {
        return memory::run(env, name, input).await;
    }
    match name {
        conversation_search::NAME => conversation_search::run(env, &input).await,
        ask::NAME => ToolOutcome::error(crate::policy::DEFAULT_ASK_USER_QUESTION_MESSAGE),
        web::NAME => web::run(&env.web, &input).await,
        _ => {
            let workdir = match Workdir::new(&env.workdir) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "the agent's workdir cannot be used");
                    return ToolOutcome::error("The working directory is not available; tell the person.");
                }
            };
            match name {
                bash::NAME => bash::run(&workdir, &env.sandbox, &input).await,
                n if files::specs().iter().any(|s| s.name == n) => files::run(&workdir, n, &input).await,
                n if search::specs().iter().any(|s| s.name == n) => search::run(&workdir, n, &input).await,
                other => ToolOutcome::error(format!(
                    "There is no tool named {other}. The tools are: {}.",
                    names().join(", ")
                )),
            }
        }
    }
}
