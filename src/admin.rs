//! The operator's requests that need only the store (agents, conversations,
//! approvals read, grants, the store's size), answered the same way whether the
//! command opened the store itself or the switchboard that holds it (`serve`, a
//! `chat`, the background SDK engine) answers over the control socket.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::agent::transcript::{parse_jsonl, to_jsonl};
use crate::agent::{AgentBackend, AgentError, CreateAgentOptions};
use crate::control::{render_approval, render_approvals, render_audit, render_grants, Answer, Request};
use crate::policy::summary::one_line;
use crate::store::{format_time as time, render_sizes, Store};

/// How many of the store's largest parts `check` lists.
pub const LARGEST_SHOWN: usize = 6;

/// What any holder of the data directory needs to answer the store-only requests.
#[derive(Clone)]
pub struct StoreRequests {
    pub backend: Arc<dyn AgentBackend>,
    pub store: Arc<dyn Store>,
    /// Masked in what the operator is shown.
    pub secrets: Vec<String>,
    /// `[llm] model`, shown for agents that follow it.
    pub default_model: String,
}

impl StoreRequests {
    /// Answers `request` when it needs only the store; gives it back otherwise
    /// (decisions, pairing and sessions are the holder's own).
    pub async fn answer(&self, request: Request) -> Result<Answer, Request> {
        let failed = |e: AgentError| Answer::failed(e.to_string());
        Ok(match request {
            Request::ApprovalsList { all } => {
                self.backend.approvals().await.map(|a| Answer::ok(render_approvals(&a, all))).unwrap_or_else(failed)
            }
            Request::ApprovalsAudit => {
                self.backend.audit_log().await.map(|r| Answer::ok(render_audit(&r))).unwrap_or_else(failed)
            }
            Request::ApprovalsShow { id } => match self.backend.approval(&id).await {
                Ok(Some(a)) => Answer::ok(render_approval(&a, &self.secrets)),
                Ok(None) => Answer::failed(format!("there is no approval request {id}")),
                Err(e) => failed(e),
            },
            Request::GrantsList { chat } => {
                self.backend.grants(chat.as_deref()).await.map(|g| Answer::ok(render_grants(&g))).unwrap_or_else(failed)
            }
            Request::GrantsRevoke { id } => match self.backend.revoke_grant(&id).await {
                Ok(true) => Answer::ok(format!("revoked {id}\n")),
                Ok(false) => Answer::failed(format!("there is no grant {id}")),
                Err(e) => failed(e),
            },
            Request::StoreSizes => match crate::store::scan(&self.store, |s| s.sizes()).await {
                Ok(sizes) => Answer::ok(render_sizes(&sizes, LARGEST_SHOWN)),
                Err(e) => Answer::failed(e.to_string()),
            },
            Request::Admin { request } => answer_remote(&*self.backend, &self.default_model, request).await,
            other => return Err(other),
        })
    }
}

/// One `switchboard agent …` or `switchboard conversation …` command. Whatever it
/// reads from a file or standard input travels inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    AgentCreate {
        name: Option<String>,
        persona: Option<String>,
        human: Option<String>,
        system_prompt: Option<String>,
        model: Option<String>,
    },
    AgentList,
    AgentShow {
        id: String,
    },
    AgentDelete {
        id: String,
    },
    MemoryGet {
        id: String,
        label: String,
    },
    MemorySet {
        id: String,
        label: String,
        value: String,
    },
    MemoryHistory {
        id: String,
        label: String,
    },
    ConversationList {
        agent: Option<String>,
    },
    /// The conversation as JSONL on standard output.
    ConversationExport {
        id: String,
    },
    /// A new conversation from an export's text; the default agent's when `agent` is `None`.
    ConversationImport {
        agent: Option<String>,
        jsonl: String,
    },
}

/// Answers a request that came over the control socket: like [`answer`], but an
/// agent is not deleted under running turns (this process may be running some).
pub async fn answer_remote(backend: &dyn AgentBackend, default_model: &str, request: AdminRequest) -> Answer {
    if let AdminRequest::AgentDelete { .. } = request {
        return Answer::failed(
            "an agent is deleted only when no other switchboard runs on the data directory (its turns could still be writing); stop them first".into(),
        );
    }
    answer(backend, default_model, request).await
}

/// Answers `request`; `default_model` is `[llm] model`, shown for agents that follow it.
pub async fn answer(backend: &dyn AgentBackend, default_model: &str, request: AdminRequest) -> Answer {
    match run(backend, default_model, request).await {
        Ok(answer) => answer,
        Err(e) => Answer::failed(hinted(e)),
    }
}

async fn run(backend: &dyn AgentBackend, default_model: &str, request: AdminRequest) -> Result<Answer, AgentError> {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let mut stderr = String::new();
    match request {
        AdminRequest::AgentCreate { name, persona, human, system_prompt, model } => {
            let options = CreateAgentOptions { name, persona, human, system_prompt, model, ..Default::default() };
            line(backend.create_agent(options).await?.agent.id);
        }
        AdminRequest::AgentList => {
            let agents = backend.list_agents().await?;
            if agents.is_empty() {
                line("No agents yet; the first `switchboard chat` or `prompt` creates one.".into());
            }
            for a in agents {
                let model = a.model.as_deref().unwrap_or(default_model);
                line(format!("{}  {}  model={}  created={}", a.id, a.name, model, time(a.created_at)));
            }
        }
        AdminRequest::AgentShow { id } => {
            let details = backend.agent(&id).await?;
            let a = &details.agent;
            line(format!("id:                   {}", a.id));
            line(format!("name:                 {}", a.name));
            line(format!("model:                {}", a.model.as_deref().unwrap_or(default_model)));
            line(format!("created:              {}", time(a.created_at)));
            line(format!("default conversation: {}", a.default_conversation));
            let prompt = serde_json::to_string(&a.system_prompt).unwrap_or_default();
            line(format!("system prompt:        {}", one_line(&prompt, 100)));
            line("memory blocks:".into());
            for b in &details.blocks {
                let ro = if b.read_only { ", read-only" } else { "" };
                line(format!(
                    "  {} ({}/{} chars{ro}): {}",
                    b.label,
                    b.value.chars().count(),
                    b.limit,
                    one_line(&b.value, 80)
                ));
            }
        }
        AdminRequest::AgentDelete { id } => {
            backend.delete_agent(&id).await?;
            line(format!("deleted {id}"));
        }
        AdminRequest::MemoryGet { id, label } => line(backend.memory_block(&id, &label).await?.value),
        AdminRequest::MemorySet { id, label, value } => {
            let block = backend.set_memory_block(&id, &label, &value).await?;
            line(format!("{} set ({}/{} chars)", block.label, block.value.chars().count(), block.limit));
        }
        AdminRequest::MemoryHistory { id, label } => {
            let edits = backend.memory_history(&id, &label).await?;
            if edits.is_empty() {
                line(format!("No recorded edits of {label}."));
            }
            for e in edits {
                line(format!(
                    "{}  {}  by={} ({})  chat={}\n    now: {}",
                    time(e.at),
                    e.how,
                    e.by.as_deref().unwrap_or("-"),
                    e.tier.as_str(),
                    e.chat.as_deref().unwrap_or("-"),
                    one_line(&e.after, 160)
                ));
            }
        }
        AdminRequest::ConversationList { agent } => {
            let conversations = backend.list_conversations(agent.as_deref()).await?;
            if conversations.is_empty() {
                line("No conversations.".into());
            }
            for c in conversations {
                line(format!(
                    "{}  {}  created={}  updated={}",
                    c.id,
                    c.agent_id,
                    time(c.created_at),
                    time(c.updated_at)
                ));
            }
        }
        AdminRequest::ConversationExport { id } => out.push_str(&to_jsonl(&backend.export_conversation(&id).await?)),
        AdminRequest::ConversationImport { agent, jsonl } => {
            let entries = parse_jsonl(&jsonl).map_err(|e| AgentError::Invalid(format!("{e:#}")))?;
            let agent_id = match agent {
                Some(id) => backend.agent(&id).await?.agent.id,
                None => backend.default_agent().await?.id,
            };
            let count = entries.len();
            let conversation = backend.import_conversation(&agent_id, entries).await?;
            stderr.push_str(&format!("imported {count} entries\n"));
            line(conversation.id);
        }
    }
    Ok(Answer { stdout: out, stderr, code: 0 })
}

/// The error, with where to look when an id is wrong.
pub fn hinted(e: AgentError) -> String {
    match &e {
        AgentError::NotFound { kind: "agent", .. } => format!("{e}; see `switchboard agent list`"),
        AgentError::NotFound { kind: "conversation", .. } => format!("{e}; see `switchboard conversation list`"),
        _ => e.to_string(),
    }
}
