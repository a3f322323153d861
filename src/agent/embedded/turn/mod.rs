//! One turn of the agent loop: record the user's message, then call the model and
//! run the tools it asks for (each judged by `can_use_tool`) until it answers
//! without tools or `max_steps` is reached. Every turn ends with a `result`.
//!
//! The loop reads its state from the transcript, so a turn cut off by a crash (tool
//! calls without results, an approval still pending) is finished by a later turn,
//! or by a resumed one (`Session::resume`) once its approval is decided.

mod tool_calls;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;

use super::llm::{ChatRequest, Delta, LlmError, ModelReply, Tools};
use super::tools;
use super::{compaction, history, prompt, Inner, Workplace};
use crate::agent::{
    ErrorKind, ExternalTools, SdkMessage, StopReason, StreamDelta, TurnRequest, TurnResult, Usage, UserInput,
};
use crate::policy::{CanUseTool, Tier, ToolContext};
use crate::store::{blocking, text_content, AgentRecord, Entry, MessageBody, StoreError};

/// Why a turn stopped early, in words for the person.
struct Failure {
    message: String,
    kind: ErrorKind,
}

impl Failure {
    fn internal(message: &str) -> Failure {
        Failure { message: message.into(), kind: ErrorKind::Internal }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure during a turn");
        Failure::internal("switchboard could not read or save the conversation")
    }
}

/// What a session adds to its turns.
pub(super) struct Extras {
    /// Where its tools work, when not in `[agent] workdir`.
    pub place: Option<Arc<Workplace>>,
    /// Tools its program runs.
    pub external: Option<Arc<dyn ExternalTools>>,
    /// The lease its entries are stored under (replicas): none is stored once
    /// it is lost.
    pub fence: Option<crate::store::Lease>,
}

struct Turn {
    inner: Arc<Inner>,
    policy: Arc<dyn CanUseTool>,
    context: ToolContext,
    extras: Extras,
    request: TurnRequest,
    /// The conversation's active branch, loaded once and kept current as the turn
    /// appends (the conversation lock makes this turn its only writer). Its last
    /// entry is the parent of the next one.
    path: Vec<Entry>,
    usage: Option<Usage>,
    steps: u32,
    last_text: Option<String>,
}

pub(super) async fn run(
    inner: Arc<Inner>,
    policy: Arc<dyn CanUseTool>,
    mut context: ToolContext,
    extras: Extras,
    request: TurnRequest,
) {
    let started = Instant::now();
    // One turn at a time per conversation; a second session waits its turn.
    let guard = tokio::select! {
        guard = inner.conversation_locks.lock(&request.conversation_id) => Some(guard),
        _ = request.cancel.cancelled() => None,
    };
    // Whether a guest's words are in what this turn reads, as the turn before it
    // left the conversation (on any replica). A guest's turn may not edit memory
    // at all: nothing to read for it.
    if context.tier != Tier::Guest && guard.is_some() {
        context.guests_heard = inner.heard.heard(&request.conversation_id).await;
    }
    let mut turn = Turn {
        inner,
        policy,
        context,
        extras,
        request,
        path: Vec::new(),
        usage: Some(Usage::default()),
        steps: 0,
        last_text: None,
    };
    let outcome = match guard {
        // A bug that panics still ends the turn with a result (the person hears
        // that something failed), as every turn must. Its message is not logged:
        // a panic's message can quote the text it was handling.
        Some(_) => AssertUnwindSafe(turn.drive()).catch_unwind().await.unwrap_or_else(|_| {
            tracing::error!(conversation = %turn.request.conversation_id, "the agent's turn panicked");
            Err(Failure::internal("the turn failed unexpectedly"))
        }),
        None => Ok(StopReason::Cancelled),
    };
    let (stop_reason, error) = match outcome {
        Ok(reason) => (reason, None),
        Err(Failure { message, kind }) => (StopReason::Error, Some((message, kind))),
    };
    let result = TurnResult {
        success: error.is_none() && stop_reason != StopReason::Cancelled,
        error_kind: error.as_ref().map(|(_, kind)| *kind),
        result: turn.last_text.take(),
        error: error.map(|(message, _)| message),
        stop_reason,
        agent_id: turn.request.agent_id.clone(),
        conversation_id: turn.request.conversation_id.clone(),
        num_steps: turn.steps,
        duration_ms: started.elapsed().as_millis() as u64,
        usage: turn.usage,
    };
    tracing::info!(conversation = %result.conversation_id, steps = result.num_steps, stop = ?result.stop_reason, ms = result.duration_ms, "turn finished");
    let _ = turn.request.events.send(SdkMessage::Result(result));
}

impl Turn {
    async fn drive(&mut self) -> Result<StopReason, Failure> {
        let agent_id = self.request.agent_id.clone();
        let agent =
            self.inner.agents.get(&agent_id).await?.ok_or_else(|| Failure::internal("the agent no longer exists"))?;
        let model = agent.model.clone().unwrap_or_else(|| self.inner.settings.llm.model.clone());
        self.emit(SdkMessage::Init {
            agent_id: agent.id.clone(),
            conversation_id: self.request.conversation_id.clone(),
            session_id: self.request.session_id.clone(),
            model: model.clone(),
            tools: tools::names(),
        });
        let conversation_id = self.request.conversation_id.clone();
        self.path = crate::store::read(&self.inner.store, move |s| {
            history::active_tail(s.entries_newest_first(&conversation_id))
        })
        .await?;

        // Tool calls an earlier turn left unfinished come first; a new message waits
        // behind them (and behind their approvals).
        let unfinished = self.settle_tool_calls(&agent).await?;
        if self.request.cancel.is_cancelled() {
            return Ok(StopReason::Cancelled);
        }
        // Messages collected with the input, each its own entry (already there
        // after a replay), behind the settled calls.
        for earlier in self.request.earlier.clone() {
            if self.recorded(&earlier).await? {
                continue;
            }
            let mut entry = Entry::new(self.head(), MessageBody::User { content: text_content(earlier.text) });
            if let Some(id) = earlier.id {
                entry.msg.id = id;
            }
            self.store_entry(entry).await?;
        }
        let input = match self.request.input.clone() {
            // Sent before (a replay): continue from where that attempt got to.
            Some(input) if self.recorded(&input).await? => None,
            other => other,
        };
        match input {
            Some(input) => {
                let mut entry = Entry::new(self.head(), MessageBody::User { content: text_content(input.text) });
                if let Some(id) = input.id {
                    entry.msg.id = id;
                }
                self.store_entry(entry).await?
            }
            None if !unfinished && !self.awaits_model() => return Ok(StopReason::EndTurn),
            None => {}
        }
        loop {
            if self.request.cancel.is_cancelled() {
                return Ok(StopReason::Cancelled);
            }
            if self.steps >= self.inner.settings.agent.max_steps {
                return Ok(StopReason::MaxSteps);
            }
            self.steps += 1;
            let reply = match self.call_model(&agent, &model).await? {
                Some(reply) => reply,
                None => return Ok(StopReason::Cancelled),
            };
            if reply.tool_calls.is_empty() {
                return Ok(StopReason::EndTurn);
            }
            self.settle_tool_calls(&agent).await?;
        }
    }

    /// One model call, recorded and streamed; `None` when cancelled.
    async fn call_model(&mut self, agent: &AgentRecord, model: &str) -> Result<Option<ModelReply>, Failure> {
        let mut force_compaction = false;
        let reply = loop {
            let chat = self.prepare(agent, model, force_compaction).await?;
            let events = self.request.events.clone();
            let mut forward = move |delta: Delta| {
                let event = match delta {
                    Delta::Text(t) => StreamDelta::Text(t),
                    Delta::Reasoning(t) => StreamDelta::Reasoning(t),
                };
                let _ = events.send(SdkMessage::StreamEvent { event });
            };
            match self.inner.llm.complete(&chat, &mut forward, &self.request.cancel).await {
                Ok(reply) => break reply,
                Err(LlmError::Cancelled) => return Ok(None),
                // The server's context is smaller than it looked: compact, then once more.
                Err(e) if e.is_context_exceeded() && !force_compaction => {
                    tracing::warn!(error = %e, "the prompt was too long for the model; compacting and asking again");
                    force_compaction = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "model call failed");
                    return Err(Failure { message: e.to_string(), kind: ErrorKind::Model });
                }
            }
        };
        Usage::add(&mut self.usage, reply.usage);
        if reply.text.trim().is_empty() && reply.tool_calls.is_empty() && self.last_text.is_none() {
            // Nothing at all (a role chunk, then stop): an error the person is told
            // of, not a silent success.
            tracing::warn!("the model sent an empty reply");
            return Err(Failure { message: "the model sent an empty reply".into(), kind: ErrorKind::Model });
        }
        let reasoning = (!reply.reasoning.is_empty()).then(|| reply.reasoning.clone());
        let uuid = self
            .append(MessageBody::Assistant {
                content: if reply.text.is_empty() { Vec::new() } else { text_content(reply.text.clone()) },
                tool_calls: reply.tool_calls.clone(),
                reasoning: reasoning.clone(),
            })
            .await?;
        if let Some(content) = reasoning {
            self.emit(SdkMessage::Reasoning { content });
        }
        if !reply.text.is_empty() {
            self.emit(SdkMessage::Assistant { content: reply.text.clone(), uuid });
            self.last_text = Some(reply.text.clone());
        }
        Ok(Some(reply))
    }

    /// Whether the transcript ends where the model should speak next (after a user
    /// message or tool results), as when a resumed turn's tools have all finished.
    fn awaits_model(&self) -> bool {
        self.path
            .iter()
            .rev()
            .find(|e| !matches!(e.msg.body, MessageBody::Custom { .. }))
            .is_some_and(|e| matches!(e.msg.body, MessageBody::User { .. } | MessageBody::Tool { .. }))
    }

    /// Whether the conversation holds an entry with the input's id (a keyed
    /// lookup, unless the caller knows it is the input's first sending).
    async fn recorded(&self, input: &UserInput) -> Result<bool, Failure> {
        let Some(id) = input.id.clone().filter(|_| !input.first) else { return Ok(false) };
        let conversation_id = self.request.conversation_id.clone();
        Ok(crate::store::read(&self.inner.store, move |s| s.has_entry(&conversation_id, &id)).await?)
    }

    /// The id new entries hang under.
    fn head(&self) -> Option<String> {
        self.path.last().map(|e| e.id().to_string())
    }

    /// The request for the next model call, compacting first when it would be too
    /// big, or (`force`) because the server said it was.
    async fn prepare(&mut self, agent: &AgentRecord, model: &str, force: bool) -> Result<ChatRequest, Failure> {
        let settings = &self.inner.settings;
        let trigger = (settings.llm.context_window as f64 * settings.agent.compaction_threshold) as u64;
        let mut compacted = false;
        // The built-in ones are serialized once for every turn; a session's own
        // (registered by an SDK client) join them here.
        let tools = match &self.extras.external {
            Some(external) => Tools::new(&[tools::definitions(), &external.definitions()].concat()),
            None => tools::for_request(),
        };
        loop {
            // Memory is re-read every call: another conversation may have changed it.
            let agent_id = agent.id.clone();
            let blocks = crate::store::read(&self.inner.store, move |s| s.blocks(&agent_id)).await?;
            let window = history::window(&self.path);
            let system = prompt::render(
                &agent.name,
                &agent.system_prompt,
                &blocks,
                window.summary.as_deref(),
                &self.inner.admins,
            );
            let messages = history::to_model_messages(&window.entries);
            let estimate = compaction::estimate_tokens(&system, &messages, &tools);
            if (estimate > trigger || force) && !compacted {
                let fixed = compaction::estimate_tokens(&system, &[], &tools);
                // Forced: the real limit is unknown but below this prompt; keep little.
                let budget = if force { estimate.min(trigger) / 2 } else { trigger };
                let keep_budget = budget.saturating_sub(fixed) / 2;
                if let Some(plan) = compaction::plan(&window.entries, keep_budget) {
                    compacted = true;
                    self.compact(model, window.summary.as_deref(), plan, estimate).await?;
                    continue;
                }
            }
            let mut all = vec![serde_json::json!({"role": "system", "content": system})];
            all.extend(messages);
            return Ok(ChatRequest { model: model.to_string(), messages: all, tools: tools.clone() });
        }
    }

    /// Summarises the older part of the window into a compaction entry. If the model
    /// cannot summarise, the turn goes on with the full history.
    async fn compact(
        &mut self,
        model: &str,
        previous: Option<&str>,
        plan: compaction::Plan,
        estimate: u64,
    ) -> Result<(), Failure> {
        let max_chars = (self.inner.settings.llm.context_window as usize).saturating_mul(2);
        let request = compaction::summary_request(model, previous, &plan.summarize, max_chars);
        let reply = self.inner.llm.complete(&request, &mut |_| {}, &self.request.cancel).await;
        match reply {
            Ok(reply) if !reply.text.trim().is_empty() => {
                Usage::add(&mut self.usage, reply.usage);
                let entry = compaction::compaction_entry(self.head(), reply.text.trim(), &plan, estimate);
                self.store_entry(entry).await?;
                tracing::info!(conversation = %self.request.conversation_id, summarized = plan.summarize.len(), "conversation compacted");
            }
            Ok(_) => tracing::warn!("compaction produced an empty summary; continuing without it"),
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; continuing with the full history")
            }
        }
        Ok(())
    }

    /// Appends at the head; returns the new entry's id.
    async fn append(&mut self, body: MessageBody) -> Result<String, Failure> {
        let entry = Entry::new(self.head(), body);
        let id = entry.id().to_string();
        self.store_entry(entry).await?;
        Ok(id)
    }

    async fn store_entry(&mut self, entry: Entry) -> Result<(), Failure> {
        let conversation_id = self.request.conversation_id.clone();
        let stored = entry.clone();
        match self.extras.fence.clone() {
            None => {
                blocking(&self.inner.store, move |s| s.append_entry(&conversation_id, &stored)).await?;
            }
            Some(lease) => {
                let append =
                    move |s: &dyn crate::store::Store| s.append_entry_fenced(&lease, &conversation_id, &stored);
                if blocking(&self.inner.store, append).await?.is_none() {
                    tracing::warn!("another replica took the conversation; this turn stops");
                    return Err(Failure::internal("another switchboard replica took over this conversation"));
                }
            }
        }
        self.path.push(entry);
        Ok(())
    }

    fn emit(&self, message: SdkMessage) {
        // A reader that went away does not stop the turn: its work is still recorded.
        let _ = self.request.events.send(message);
    }
}
