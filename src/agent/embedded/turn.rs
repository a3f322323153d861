//! One turn of the agent loop: record the user's message, then call the model and
//! run the tools it asks for (each judged by `can_use_tool`) until it answers
//! without tools or `max_steps` is reached. Every turn ends with a `result`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::llm::{ChatRequest, Delta, LlmError};
use super::tools::{self, ToolEnv, ToolOutcome};
use super::{compaction, history, prompt, Inner};
use crate::agent::transcript::{active_path, head_id};
use crate::agent::{SdkMessage, StopReason, StreamDelta, TurnRequest, TurnResult, Usage};
use crate::policy::{CanUseTool, PermissionDecision, ToolContext};
use crate::store::{blocking, text_content, AgentRecord, Entry, MessageBody, StoreError, ToolCall};

/// Why a turn stopped early, in words for the person.
struct Failure(String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure during a turn");
        Failure("switchboard could not read or save the conversation".into())
    }
}

struct Turn {
    inner: Arc<Inner>,
    policy: Arc<dyn CanUseTool>,
    context: ToolContext,
    request: TurnRequest,
    /// The newest transcript entry: the parent of the next one.
    head: Option<String>,
    usage: Usage,
    steps: u32,
    last_text: Option<String>,
}

pub(super) async fn run(inner: Arc<Inner>, policy: Arc<dyn CanUseTool>, context: ToolContext, request: TurnRequest) {
    let started = Instant::now();
    // One turn at a time per conversation; a second session waits its turn.
    let lock = inner.conversation_lock(&request.conversation_id);
    let guard = tokio::select! {
        guard = lock.lock_owned() => Some(guard),
        _ = request.cancel.cancelled() => None,
    };
    let mut turn =
        Turn { inner, policy, context, request, head: None, usage: Usage::default(), steps: 0, last_text: None };
    let outcome = match guard {
        Some(_) => turn.drive().await,
        None => Ok(StopReason::Cancelled),
    };
    let (stop_reason, error) = match outcome {
        Ok(reason) => (reason, None),
        Err(Failure(message)) => (StopReason::Error, Some(message)),
    };
    let result = TurnResult {
        success: error.is_none() && stop_reason != StopReason::Cancelled,
        result: turn.last_text.take(),
        error,
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
        let agent = blocking(&self.inner.store, move |s| s.agent(&agent_id))
            .await?
            .ok_or_else(|| Failure("the agent no longer exists".into()))?;
        let model = agent.model.clone().unwrap_or_else(|| self.inner.settings.llm.model.clone());
        self.emit(SdkMessage::Init {
            agent_id: agent.id.clone(),
            conversation_id: self.request.conversation_id.clone(),
            session_id: self.request.session_id.clone(),
            model: model.clone(),
            tools: tools::names(),
        });
        let conversation_id = self.request.conversation_id.clone();
        let entries = blocking(&self.inner.store, move |s| s.entries(&conversation_id)).await?;
        self.head = head_id(&entries);
        let input = self.request.input.clone();
        self.append(MessageBody::User { content: text_content(input) }).await?;

        loop {
            if self.request.cancel.is_cancelled() {
                return Ok(StopReason::Cancelled);
            }
            if self.steps >= self.inner.settings.agent.max_steps {
                return Ok(StopReason::MaxSteps);
            }
            self.steps += 1;
            let chat = self.prepare(&agent, &model).await?;
            let events = self.request.events.clone();
            let mut forward = move |delta: Delta| {
                let event = match delta {
                    Delta::Text(t) => StreamDelta::Text(t),
                    Delta::Reasoning(t) => StreamDelta::Reasoning(t),
                };
                let _ = events.send(SdkMessage::StreamEvent { event });
            };
            let reply = match self.inner.llm.complete(&chat, &mut forward, &self.request.cancel).await {
                Ok(reply) => reply,
                Err(LlmError::Cancelled) => return Ok(StopReason::Cancelled),
                Err(e) => {
                    tracing::warn!(error = %e, "model call failed");
                    return Err(Failure(e.to_string()));
                }
            };
            self.usage.add(reply.usage);
            let reasoning = (!reply.reasoning.is_empty()).then(|| reply.reasoning.clone());
            self.append(MessageBody::Assistant {
                content: if reply.text.is_empty() { Vec::new() } else { text_content(reply.text.clone()) },
                tool_calls: reply.tool_calls.clone(),
                reasoning: reasoning.clone(),
            })
            .await?;
            if let Some(content) = reasoning {
                self.emit(SdkMessage::Reasoning { content });
            }
            if !reply.text.is_empty() {
                self.emit(SdkMessage::Assistant { content: reply.text.clone() });
                self.last_text = Some(reply.text);
            }
            if reply.tool_calls.is_empty() {
                return Ok(StopReason::EndTurn);
            }
            for call in &reply.tool_calls {
                let outcome = if self.request.cancel.is_cancelled() {
                    ToolOutcome::error("The turn was cancelled before this tool ran.")
                } else {
                    self.call_tool(&agent, call).await
                };
                self.emit(SdkMessage::ToolResult {
                    tool_call_id: call.id.clone(),
                    content: outcome.content.clone(),
                    is_error: outcome.is_error,
                });
                self.append(MessageBody::Tool {
                    tool_call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: text_content(outcome.content),
                    is_error: outcome.is_error,
                })
                .await?;
            }
        }
    }

    /// The request for the next model call, compacting first when it would be too big.
    async fn prepare(&mut self, agent: &AgentRecord, model: &str) -> Result<ChatRequest, Failure> {
        let settings = &self.inner.settings;
        let trigger = (settings.llm.context_window as f64 * settings.agent.compaction_threshold) as u64;
        let mut compacted = false;
        loop {
            let (agent_id, conversation_id) = (agent.id.clone(), self.request.conversation_id.clone());
            let (blocks, entries) =
                blocking(&self.inner.store, move |s| Ok((s.blocks(&agent_id)?, s.entries(&conversation_id)?))).await?;
            let path = active_path(&entries);
            let window = history::window(&path);
            let system = prompt::render(&agent.name, &agent.system_prompt, &blocks, window.summary.as_deref());
            let messages = history::to_model_messages(&window.entries);
            let tools = tools::definitions();
            let estimate = compaction::estimate_tokens(&system, &messages, &tools);
            if estimate > trigger && !compacted {
                let fixed = compaction::estimate_tokens(&system, &[], &tools);
                let keep_budget = trigger.saturating_sub(fixed) / 2;
                if let Some(plan) = compaction::plan(&window.entries, keep_budget) {
                    compacted = true;
                    self.compact(model, window.summary.as_deref(), plan, estimate).await?;
                    continue;
                }
            }
            let mut all = vec![serde_json::json!({"role": "system", "content": system})];
            all.extend(messages);
            return Ok(ChatRequest { model: model.to_string(), messages: all, tools });
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
                self.usage.add(reply.usage);
                let entry = compaction::compaction_entry(self.head.clone(), reply.text.trim(), &plan, estimate);
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

    async fn call_tool(&mut self, agent: &AgentRecord, call: &ToolCall) -> ToolOutcome {
        let parsed: Result<Value, String> = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err("The tool arguments must be a JSON object.".into()),
            Err(e) => Err(format!("The tool arguments were not valid JSON ({e}).")),
        };
        self.emit(SdkMessage::ToolCall {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            tool_input: parsed.clone().unwrap_or_else(|_| Value::String(call.arguments.clone())),
        });
        let input = match parsed {
            Ok(input) => input,
            Err(message) => return ToolOutcome::error(message),
        };
        let outcome = match self.policy.can_use_tool(&call.name, &input, &self.context).await {
            PermissionDecision::Allow { updated_input } => {
                let env = ToolEnv {
                    store: self.inner.store.clone(),
                    agent_id: agent.id.clone(),
                    memory_lock: self.inner.memory_lock.clone(),
                };
                tools::run(&env, &call.name, updated_input.unwrap_or(input)).await
            }
            PermissionDecision::Deny { message } => ToolOutcome::error(message),
        };
        tracing::info!(tool = %call.name, is_error = outcome.is_error, "tool call finished");
        outcome
    }

    async fn append(&mut self, body: MessageBody) -> Result<(), Failure> {
        self.store_entry(Entry::new(self.head.clone(), body)).await
    }

    async fn store_entry(&mut self, entry: Entry) -> Result<(), Failure> {
        let id = entry.id().to_string();
        let conversation_id = self.request.conversation_id.clone();
        blocking(&self.inner.store, move |s| s.append_entry(&conversation_id, &entry)).await?;
        self.head = Some(id);
        Ok(())
    }

    fn emit(&self, message: SdkMessage) {
        // A reader that went away does not stop the turn: its work is still recorded.
        let _ = self.request.events.send(message);
    }
}
