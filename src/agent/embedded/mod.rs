//! The embedded runtime: agents, memory and transcripts in the local store, and the
//! model behind any OpenAI-compatible chat completions endpoint.

mod agents;
mod compaction;
mod heard;
mod history;
pub mod llm;

pub mod prompt;
pub mod tools;
mod turn;

use std::sync::Arc;

use async_trait::async_trait;

use crate::agent::{
    AgentBackend, AgentDetails, AgentError, CreateAgentOptions, ExternalTools, MessagePage, PageRequest, RecordedReply,
    Session, SessionOptions, TurnRequest, TurnRunner, UserInput,
};
use crate::config::Settings;
use crate::keyed::KeyedLocks;
use crate::policy::approvals::{Approvals, Choice, DecideError, Decided, Decider, OPERATOR};
use crate::policy::{CanUseTool, Policy, Tier, ToolContext};
use crate::store::{
    blocking, memory_edits, now_ms, record_memory_edit, text_content, AgentRecord, ApprovalRecord, AuditRecord,
    ConversationRecord, Entry, Grant, MemoryBlock, MemoryEdit, MessageBody, Store, SystemPrompt,
};
use llm::LlmClient;
use tools::sandbox::Sandbox;

const DEFAULT_AGENT_KEY: &str = "default_agent";

pub struct EmbeddedBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    settings: Settings,
    llm: LlmClient,
    policy: Arc<dyn CanUseTool>,
    approvals: Approvals,
    memory_lock: Arc<tokio::sync::Mutex<()>>,
    /// Held while creating the default agent, so two first contacts make one agent.
    create_lock: tokio::sync::Mutex<()>,
    /// One turn (or other change) at a time per conversation.
    conversation_locks: KeyedLocks,
    /// How Bash's commands are confined, probed on first use.
    sandbox: std::sync::OnceLock<Sandbox>,
    /// Who the agent is told its admins are (stable ids).
    admins: Vec<String>,
    /// Conversations a guest's words (or a fetched page) reached, which others'
    /// turns read too.
    heard: heard::GuestsHeard,
    /// Agent records as last read (every read of one goes through it, and
    /// every write tells it).
    agents: agents::Agents,
}

impl Inner {
    fn sandbox(&self) -> &Sandbox {
        self.sandbox.get_or_init(|| Sandbox::new(&self.settings.agent.workdir, &self.settings.daemon_paths()))
    }
}

impl EmbeddedBackend {
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> EmbeddedBackend {
        let llm = LlmClient::new(&settings.llm);
        let classes = tools::specs().into_iter().map(|t| (t.name.to_string(), t.class)).collect();
        let policy = Arc::new(Policy::new(&settings, store.clone(), classes));
        let approvals = Approvals::new(
            store.clone(),
            std::time::Duration::from_secs(settings.policy.approval_timeout_secs),
            settings.policy.approvers.clone(),
            settings.policy.users_approve_own,
            std::time::Duration::from_secs(settings.policy.grant_expiry_hours * 3600),
            settings.secrets(),
        );
        let admins = settings.admin_ids();
        EmbeddedBackend {
            inner: Arc::new(Inner {
                store: store.clone(),
                settings,
                llm,
                policy,
                approvals,
                memory_lock: Arc::default(),
                create_lock: tokio::sync::Mutex::new(()),
                conversation_locks: KeyedLocks::new(),
                sandbox: std::sync::OnceLock::new(),
                admins,
                heard: heard::GuestsHeard::new(store.clone()),
                agents: agents::Agents::new(store.clone()),
            }),
        }
    }

    /// How the agent's commands are confined here (probed once, on first use).
    pub fn sandbox(&self) -> &Sandbox {
        self.inner.sandbox()
    }

    pub fn llm(&self) -> &LlmClient {
        &self.inner.llm
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// [`AgentBackend::set_memory_block`]'s read and write (run exclusively).
    async fn set_memory_block_now(&self, agent_id: &str, label: &str, value: &str) -> Result<MemoryBlock, AgentError> {
        let details = self.agent(agent_id).await?;
        let mut block = details
            .blocks
            .into_iter()
            .find(|b| b.label == label)
            .unwrap_or_else(|| MemoryBlock::new(label, "", "Set by the operator."));
        let len = value.chars().count();
        if len > block.limit {
            return Err(AgentError::Invalid(format!(
                "the value is {len} characters, over the '{label}' block's limit of {}",
                block.limit
            )));
        }
        if !tools::memory::valid_label(label) {
            return Err(AgentError::Invalid(format!(
                "'{label}' cannot be a label: use 1-64 letters, digits, '_' or '-'"
            )));
        }
        let before = std::mem::replace(&mut block.value, value.to_string());
        let (owned, stored) = (agent_id.to_string(), block.clone());
        let edit = MemoryEdit::new(label, "set", Some(OPERATOR.into()), Tier::Admin, None, &before, value);
        blocking(self.store(), move |s| {
            s.put_block(&owned, &stored)?;
            record_memory_edit(s, &owned, &edit)
        })
        .await?;
        Ok(block)
    }

    async fn require_agent(&self, id: &str) -> Result<AgentRecord, AgentError> {
        self.inner.agents.get(id).await?.ok_or_else(|| AgentError::NotFound { kind: "agent", id: id.to_string() })
    }

    /// A session on a conversation (whether a guest's words are in it is read by
    /// each of its turns: [`ToolContext::guests_heard`]).
    fn session(&self, agent_id: String, conversation_id: String, options: SessionOptions) -> Session {
        let place = options.workdir.map(|workdir| Arc::new(Workplace { workdir, sandbox: std::sync::OnceLock::new() }));
        let (external, fence) = (options.external_tools, options.fence);
        let context = ToolContext {
            agent_id: agent_id.clone(),
            conversation_id: conversation_id.clone(),
            chat: options.chat,
            sender: options.sender,
            tier: options.tier,
            in_group: options.in_group,
            guests_heard: false,
        };
        let runner = SessionRunner {
            inner: self.inner.clone(),
            policy: options.can_use_tool.unwrap_or_else(|| self.inner.policy.clone()),
            context,
            place,
            external,
            fence,
        };
        Session::new(agent_id, conversation_id, Arc::new(runner))
    }

    async fn new_conversation(&self, agent_id: &str) -> Result<ConversationRecord, AgentError> {
        let now = now_ms();
        let record = ConversationRecord {
            id: format!("conv-{}", uuid::Uuid::new_v4()),
            agent_id: agent_id.to_string(),
            created_at: now,
            updated_at: now,
        };
        let stored = record.clone();
        blocking(self.store(), move |s| s.put_conversation(&stored)).await?;
        Ok(record)
    }
}

struct SessionRunner {
    inner: Arc<Inner>,
    policy: Arc<dyn CanUseTool>,
    context: ToolContext,
    /// Where this session's tools work, when not in `[agent] workdir`.
    place: Option<Arc<Workplace>>,
    external: Option<Arc<dyn ExternalTools>>,
    /// What its transcript entries are stored under (replicas).
    fence: Option<crate::store::Lease>,
}

/// A session's own working directory, with its confinement (made on first use
/// from the backend's, whose probe already proved the kernel can do it).
pub(crate) struct Workplace {
    workdir: std::path::PathBuf,
    sandbox: std::sync::OnceLock<Sandbox>,
}

impl Inner {
    /// The directory the session's tools work in and how its commands are confined.
    pub(crate) fn workplace(&self, place: Option<&Workplace>) -> (std::path::PathBuf, Sandbox) {
        match place {
            Some(place) => {
                let sandbox = place.sandbox.get_or_init(|| self.sandbox().with_workdir(&place.workdir));
                (place.workdir.clone(), sandbox.clone())
            }
            None => (self.settings.agent.workdir.clone(), self.sandbox().clone()),
        }
    }
}

impl TurnRunner for SessionRunner {
    fn start_turn(&self, request: TurnRequest) {
        let extras =
            turn::Extras { place: self.place.clone(), external: self.external.clone(), fence: self.fence.clone() };
        let turn = turn::run(self.inner.clone(), self.policy.clone(), self.context.clone(), extras, request);
        tokio::spawn(turn);
    }
}

#[async_trait]
impl AgentBackend for EmbeddedBackend {
    async fn create_agent(&self, options: CreateAgentOptions) -> Result<AgentDetails, AgentError> {
        let defaults = &self.inner.settings.agent;
        let now = now_ms();
        let agent = AgentRecord {
            id: format!("agent-{}", uuid::Uuid::new_v4()),
            name: options.name.unwrap_or_else(|| defaults.name.clone()),
            model: options.model,
            system_prompt: SystemPrompt::from_setting(
                options.system_prompt.as_deref().unwrap_or(&defaults.system_prompt),
                options.system_prompt_append.as_deref().unwrap_or(&defaults.system_prompt_append),
            ),
            default_conversation: format!("conv-{}", uuid::Uuid::new_v4()),
            created_at: now,
        };
        let mut blocks = vec![
            MemoryBlock::new(
                "persona",
                options.persona.as_deref().unwrap_or(&defaults.persona),
                "Who I am and how I behave.",
            ),
            MemoryBlock::new(
                "human",
                options.human.as_deref().unwrap_or(&defaults.human),
                "What I know about the person I talk with.",
            ),
        ];
        if let Some(wanted) = &options.default_blocks {
            blocks.retain(|b| wanted.contains(&b.label));
        }
        for extra in options.memory {
            blocks.retain(|b| b.label != extra.label);
            blocks.push(extra);
        }
        for b in &blocks {
            if b.value.chars().count() > b.limit {
                return Err(AgentError::Invalid(format!(
                    "the memory block '{}' is {} characters, over its limit of {}",
                    b.label,
                    b.value.chars().count(),
                    b.limit
                )));
            }
        }
        let conversation = ConversationRecord {
            id: agent.default_conversation.clone(),
            agent_id: agent.id.clone(),
            created_at: now,
            updated_at: now,
        };
        let (stored_agent, stored_blocks) = (agent.clone(), blocks.clone());
        // The agent record goes last: an agent is never visible without its blocks and
        // default conversation, even after a crash in between.
        blocking(self.store(), move |s| {
            for b in &stored_blocks {
                s.put_block(&stored_agent.id, b)?;
            }
            s.put_conversation(&conversation)?;
            s.put_agent(&stored_agent)?;
            if s.meta(DEFAULT_AGENT_KEY)?.is_none() {
                s.put_meta(DEFAULT_AGENT_KEY, &stored_agent.id)?;
            }
            Ok(())
        })
        .await?;
        self.inner.agents.changed(&agent.id);
        tracing::info!(agent = %agent.id, "agent created");
        Ok(AgentDetails { agent, blocks })
    }

    async fn agent(&self, id: &str) -> Result<AgentDetails, AgentError> {
        let agent = self.require_agent(id).await?;
        let owned = id.to_string();
        let blocks = crate::store::read(self.store(), move |s| s.blocks(&owned)).await?;
        Ok(AgentDetails { agent, blocks })
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, AgentError> {
        Ok(crate::store::scan(self.store(), |s| s.agents()).await?)
    }

    async fn delete_agent(&self, id: &str) -> Result<(), AgentError> {
        let owned = id.to_string();
        let deleted = blocking(self.store(), move |s| s.delete_agent(&owned)).await;
        self.inner.agents.changed(id);
        if deleted? {
            Ok(())
        } else {
            Err(AgentError::NotFound { kind: "agent", id: id.to_string() })
        }
    }

    async fn default_agent(&self) -> Result<AgentRecord, AgentError> {
        let _guard = self.inner.create_lock.lock().await;
        let current = match crate::store::read(self.store(), |s| s.meta(DEFAULT_AGENT_KEY)).await? {
            Some(id) => self.inner.agents.get(&id).await?,
            None => None,
        };
        if let Some(agent) = current {
            return Ok(agent);
        }
        // Replicas meeting their first person at once make one agent: created by
        // one process at a time, and looked for again inside.
        let created = crate::store::exclusively(self.store(), "agent:default", || async {
            let current = blocking(self.store(), |s| match s.meta(DEFAULT_AGENT_KEY)? {
                Some(id) => s.agent(&id),
                None => Ok(None),
            })
            .await?;
            if let Some(agent) = current {
                return Ok(Ok(agent));
            }
            let created = match self.create_agent(CreateAgentOptions::default()).await {
                Ok(created) => created.agent,
                Err(e) => return Ok(Err(e)),
            };
            let id = created.id.clone();
            blocking(self.store(), move |s| s.put_meta(DEFAULT_AGENT_KEY, &id)).await?;
            Ok(Ok(created))
        })
        .await?;
        created
    }

    async fn set_model(&self, agent_id: &str, model: Option<String>) -> Result<AgentRecord, AgentError> {
        let mut agent = self.require_agent(agent_id).await?;
        agent.model = model;
        let stored = agent.clone();
        let written = blocking(self.store(), move |s| s.put_agent(&stored)).await;
        self.inner.agents.changed(agent_id);
        written?;
        Ok(agent)
    }

    async fn set_system_prompt(&self, agent_id: &str, prompt: SystemPrompt) -> Result<AgentRecord, AgentError> {
        let mut agent = self.require_agent(agent_id).await?;
        agent.system_prompt = prompt;
        let stored = agent.clone();
        let written = blocking(self.store(), move |s| s.put_agent(&stored)).await;
        self.inner.agents.changed(agent_id);
        written?;
        Ok(agent)
    }

    async fn memory_block(&self, agent_id: &str, label: &str) -> Result<MemoryBlock, AgentError> {
        let details = self.agent(agent_id).await?;
        details
            .blocks
            .into_iter()
            .find(|b| b.label == label)
            .ok_or_else(|| AgentError::NotFound { kind: "memory block", id: label.to_string() })
    }

    async fn set_memory_block(&self, agent_id: &str, label: &str, value: &str) -> Result<MemoryBlock, AgentError> {
        let _guard = self.inner.memory_lock.lock().await;
        let section = format!("memory:{agent_id}");
        crate::store::exclusively(self.store(), &section, || async {
            Ok(self.set_memory_block_now(agent_id, label, value).await)
        })
        .await?
    }

    async fn memory_history(&self, agent_id: &str, label: &str) -> Result<Vec<MemoryEdit>, AgentError> {
        self.require_agent(agent_id).await?;
        let (agent, label) = (agent_id.to_string(), label.to_string());
        Ok(blocking(self.store(), move |s| memory_edits(s, &agent, &label)).await?)
    }

    async fn create_session(&self, agent_id: &str, options: SessionOptions) -> Result<Session, AgentError> {
        let agent = self.require_agent(agent_id).await?;
        let conversation = self.new_conversation(&agent.id).await?;
        Ok(self.session(agent.id, conversation.id, options))
    }

    async fn resume_session(&self, id: &str, options: SessionOptions) -> Result<Session, AgentError> {
        if id.starts_with("conv-") {
            let conversation = self.conversation(id).await?;
            return Ok(self.session(conversation.agent_id, conversation.id, options));
        }
        let agent = self.require_agent(id).await?;
        let conversation_id = agent.default_conversation.clone();
        let agent_id = agent.id.clone();
        let existing = {
            let id = conversation_id.clone();
            crate::store::read(self.store(), move |s| s.conversation(&id)).await?
        };
        if existing.is_none() {
            let now = now_ms();
            let record = ConversationRecord {
                id: conversation_id.clone(),
                agent_id: agent_id.clone(),
                created_at: now,
                updated_at: now,
            };
            blocking(self.store(), move |s| s.put_conversation(&record)).await?;
        }
        Ok(self.session(agent_id, conversation_id, options))
    }

    async fn note_guest_words(&self, conversation_id: &str) -> Result<(), AgentError> {
        Ok(self.inner.heard.note(conversation_id).await?)
    }

    async fn record_message(&self, conversation_id: &str, input: UserInput) -> Result<(), AgentError> {
        self.conversation(conversation_id).await?;
        // Behind any running turn, like every other change to the conversation.
        let _turn = self.inner.conversation_locks.lock(conversation_id).await;
        let id = conversation_id.to_string();
        blocking(self.store(), move |s| {
            // Keyed lookups only: the cost does not grow with the transcript.
            if let Some(m) = input.id.as_deref() {
                if s.has_entry(&id, m)? {
                    return Ok(());
                }
            }
            let head = s.entries_newest_first(&id).next().transpose()?.map(|(_, e)| e.id().to_string());
            let mut entry = Entry::new(head, MessageBody::User { content: text_content(input.text) });
            if let Some(m) = input.id {
                entry.msg.id = m;
            }
            s.append_entry(&id, &entry)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn reply_after(&self, conversation_id: &str, input_id: &str) -> Result<Option<RecordedReply>, AgentError> {
        let (id, input) = (conversation_id.to_string(), input_id.to_string());
        Ok(crate::store::read(self.store(), move |s| {
            if !s.has_entry(&id, &input)? {
                return Ok(None);
            }
            // What came after the message, and no more.
            let after = history::back_to(s.entries_newest_first(&id), |e| e.id() == input)?;
            Ok(history::reply_in(&after))
        })
        .await?)
    }

    async fn reply_of(&self, conversation_id: &str, entry_id: &str) -> Result<Option<RecordedReply>, AgentError> {
        let (id, wanted) = (conversation_id.to_string(), entry_id.to_string());
        Ok(crate::store::read(self.store(), move |s| {
            if !s.has_entry(&id, &wanted)? {
                return Ok(None);
            }
            // Past the entry, back to the user message it answers.
            let mut passed = false;
            let segment = history::back_to(s.entries_newest_first(&id), |e| {
                let answered = passed && matches!(e.msg.body, MessageBody::User { .. });
                passed |= e.id() == wanted;
                answered
            })?;
            Ok(history::reply_in(&segment))
        })
        .await?)
    }

    async fn conversation(&self, id: &str) -> Result<ConversationRecord, AgentError> {
        let owned = id.to_string();
        crate::store::read(self.store(), move |s| s.conversation(&owned))
            .await?
            .ok_or_else(|| AgentError::NotFound { kind: "conversation", id: id.to_string() })
    }

    async fn list_conversations(&self, agent_id: Option<&str>) -> Result<Vec<ConversationRecord>, AgentError> {
        if let Some(id) = agent_id {
            self.require_agent(id).await?;
        }
        let owned = agent_id.map(str::to_string);
        Ok(crate::store::scan(self.store(), move |s| s.conversations(owned.as_deref())).await?)
    }

    async fn list_messages(&self, conversation_id: &str, page: PageRequest) -> Result<MessagePage, AgentError> {
        let entries = self.export_conversation(conversation_id).await?;
        let end = match &page.before {
            None => entries.len(),
            Some(cursor) => entries
                .iter()
                .position(|e| e.id() == cursor)
                .ok_or_else(|| AgentError::Invalid(format!("{cursor} is not a message of this conversation")))?,
        };
        let start = end.saturating_sub(page.limit.max(1));
        let messages = entries[start..end].to_vec();
        let next_before = (start > 0).then(|| entries[start].id().to_string());
        Ok(MessagePage { messages, next_before })
    }

    async fn export_conversation(&self, id: &str) -> Result<Vec<Entry>, AgentError> {
        self.conversation(id).await?;
        let owned = id.to_string();
        let entries = crate::store::scan(self.store(), move |s| s.entries(&owned)).await?;
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    async fn import_conversation(&self, agent_id: &str, entries: Vec<Entry>) -> Result<ConversationRecord, AgentError> {
        self.require_agent(agent_id).await?;
        let conversation = self.new_conversation(agent_id).await?;
        // Who wrote an imported transcript is not known (a guest's DM, exported):
        // counted as one a guest spoke in, before its words go in.
        self.inner.heard.note(&conversation.id).await?;
        let id = conversation.id.clone();
        blocking(self.store(), move |s| {
            for entry in &entries {
                s.append_entry(&id, entry)?;
            }
            Ok(())
        })
        .await?;
        self.conversation(&conversation.id).await
    }

    async fn decide_approval(
        &self,
        id: &str,
        decider: &Decider,
        choice: Choice,
        reason: Option<String>,
    ) -> Result<Decided, DecideError> {
        self.inner.approvals.decide(id, decider, choice, reason).await
    }

    async fn approval_shown_cut(&self, id: &str) -> Result<(), AgentError> {
        Ok(self.inner.approvals.mark_shown_cut(id).await?)
    }

    async fn approvals(&self) -> Result<Vec<ApprovalRecord>, AgentError> {
        Ok(crate::store::scan(self.store(), |s| s.approvals()).await?)
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, AgentError> {
        let id = id.to_string();
        Ok(crate::store::read(self.store(), move |s| s.approval(&id)).await?)
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>, AgentError> {
        Ok(crate::store::scan(self.store(), |s| s.audit()).await?)
    }

    async fn grants(&self, chat: Option<&str>) -> Result<Vec<Grant>, AgentError> {
        let chat = chat.map(str::to_string);
        let now = now_ms();
        let mut grants = crate::store::scan(self.store(), move |s| s.grants(chat.as_deref())).await?;
        grants.retain(|g| g.expires_at > now);
        grants.sort_by_key(|g| g.granted_at);
        Ok(grants)
    }

    async fn revoke_grant(&self, id: &str) -> Result<bool, AgentError> {
        let owned = id.to_string();
        let removed = blocking(self.store(), move |s| s.remove_grant(&owned)).await?;
        if removed {
            tracing::info!(grant = %id, "grant revoked");
        }
        Ok(removed)
    }

    async fn cancel_approvals(
        &self,
        conversation_id: &str,
        requester: Option<&str>,
        reason: &str,
    ) -> Result<Vec<ApprovalRecord>, AgentError> {
        Ok(self.inner.approvals.cancel_conversation(conversation_id, requester, reason).await?)
    }

    async fn recover(&self) -> Result<Vec<ApprovalRecord>, AgentError> {
        Ok(self.inner.approvals.expire_overdue().await?)
    }

    async fn prune(&self) -> Result<usize, AgentError> {
        let days = self.inner.settings.store.approval_retention_days;
        Ok(self.inner.approvals.prune(days * 24 * 3600 * 1000).await?)
    }
}
