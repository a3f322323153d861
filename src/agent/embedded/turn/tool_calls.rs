//! Settling the model's tool calls: each is judged by `can_use_tool`, asked of a
//! person when the policy says so, and run at most once. A durable `tool_started`
//! marker goes into the transcript before a tool runs, so a call that was running
//! when the process died is reported as interrupted, never run again.

use std::collections::HashSet;

use crate::policy::Tier;
use serde_json::{json, Value};

use super::{Failure, Turn};
use crate::agent::embedded::history::INTERRUPTED_TOOL_RESULT;
use crate::agent::embedded::tools::{self, ToolEnv, ToolOutcome, WebOptions};
use crate::agent::SdkMessage;
use crate::policy::PermissionDecision;
use crate::store::{text_content, AgentRecord, ApprovalRecord, ApprovalState, MessageBody, ToolCall};

const STARTED_KIND: &str = "tool_started";

impl Turn {
    /// Finishes the tool calls of the newest assistant message that have no result
    /// yet. Returns whether there were any.
    pub(super) async fn settle_tool_calls(&mut self, agent: &AgentRecord) -> Result<bool, Failure> {
        let path = self.path.clone();
        let Some(at) = path.iter().rposition(|e| matches!(e.msg.body, MessageBody::Assistant { .. })) else {
            return Ok(false);
        };
        let MessageBody::Assistant { tool_calls, .. } = &path[at].msg.body else { return Ok(false) };
        let after = &path[at + 1..];
        if tool_calls.is_empty() || after.iter().any(|e| matches!(e.msg.body, MessageBody::User { .. })) {
            return Ok(false);
        }
        let mut answered = HashSet::new();
        let mut started = HashSet::new();
        for e in after {
            match &e.msg.body {
                MessageBody::Tool { tool_call_id, .. } => {
                    answered.insert(tool_call_id.clone());
                }
                MessageBody::Custom { kind, payload } if kind == STARTED_KIND => {
                    if let Some(id) = payload.get("tool_call_id").and_then(Value::as_str) {
                        started.insert(id.to_string());
                    }
                }
                _ => {}
            }
        }
        let assistant_id = path[at].id().to_string();
        let open: Vec<(usize, ToolCall)> =
            tool_calls.iter().cloned().enumerate().filter(|(_, c)| !answered.contains(&c.id)).collect();
        if open.is_empty() {
            return Ok(false);
        }
        for (position, call) in &open {
            let call_key = format!("{assistant_id}#{position}");
            self.emit(SdkMessage::ToolCall {
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                tool_input: serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| Value::String(call.arguments.clone())),
            });
            let outcome = if started.contains(&call.id) {
                ToolOutcome::error(INTERRUPTED_TOOL_RESULT)
            } else if self.request.cancel.is_cancelled() {
                ToolOutcome::error("The turn was cancelled before this tool ran.")
            } else {
                self.call_tool(agent, call, &call_key).await?
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
        Ok(true)
    }

    async fn call_tool(
        &mut self,
        agent: &AgentRecord,
        call: &ToolCall,
        call_key: &str,
    ) -> Result<ToolOutcome, Failure> {
        let input = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return Ok(ToolOutcome::error("The tool arguments must be a JSON object.")),
            Err(e) => return Ok(ToolOutcome::error(format!("The tool arguments were not valid JSON ({e})."))),
        };
        let conversation_id = self.request.conversation_id.clone();
        // A call that already has an approval (made before a restart) follows it; the
        // stored input must be this call's, or the approval is not for it.
        let existing = self.inner.approvals.for_call(&conversation_id, call_key).await?;
        let approval = match existing.filter(|a| a.input == input && a.tool == call.name) {
            Some(existing) => existing,
            None => match self.policy.can_use_tool(&call.name, &input, &self.context).await {
                PermissionDecision::Allow { updated_input } => {
                    return self.run_tool(agent, call, updated_input.unwrap_or(input)).await;
                }
                PermissionDecision::Deny { message } => return Ok(ToolOutcome::error(message)),
                PermissionDecision::Ask => {
                    self.inner.approvals.create(&self.context, call_key, &call.id, &call.name, &input).await?
                }
            },
        };
        match self.follow(approval).await? {
            Ok(input) => self.run_tool(agent, call, input).await,
            Err(refusal) => Ok(refusal),
        }
    }

    /// Waits for a pending approval (showing it) and turns its ending into either the
    /// input to run the tool with or the result the agent sees instead.
    async fn follow(&mut self, approval: ApprovalRecord) -> Result<Result<Value, ToolOutcome>, Failure> {
        let approval = if approval.state == ApprovalState::Pending {
            self.inner.approvals.watch(&approval.id);
            // Decided while we were getting here (a click right after a restart)?
            // Then there is nothing to show.
            match self.inner.approvals.find(&approval.id).await? {
                Some(current) if current.state != ApprovalState::Pending => {
                    self.inner.approvals.unwatch(&current.id);
                    current
                }
                _ => self.ask_and_wait(approval).await?,
            }
        } else {
            approval
        };
        let refusal = match approval.state {
            ApprovalState::AllowedOnce | ApprovalState::AllowedAlways => return Ok(Ok(approval.input)),
            ApprovalState::Denied => match approval.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                Some(reason) => format!("The person denied this tool call ({reason}); it did not run."),
                None => "The person denied this tool call; it did not run.".to_string(),
            },
            ApprovalState::Expired => format!(
                "Nobody approved this tool call within {} seconds, so it did not run (the request timed out).",
                self.inner.approvals.timeout().as_secs()
            ),
            ApprovalState::Cancelled | ApprovalState::Pending => {
                "The turn was cancelled while this tool call waited for approval; it did not run.".to_string()
            }
        };
        Ok(Err(ToolOutcome::error(refusal)))
    }

    /// Shows the request, waits for its ending, and reports it.
    async fn ask_and_wait(&mut self, approval: ApprovalRecord) -> Result<ApprovalRecord, Failure> {
        self.emit(SdkMessage::ApprovalRequest {
            approval_id: approval.id.clone(),
            tool_call_id: approval.tool_call_id.clone(),
            tool_name: approval.tool.clone(),
            summary: approval.summary.clone(),
            complete: approval.complete,
            expires_at: approval.expires_at,
            chat: approval.chat.clone(),
            requester: approval.requester.clone(),
        });
        let ended = self.inner.approvals.wait(&approval, &self.request.cancel).await?;
        self.emit(SdkMessage::ApprovalResolved {
            approval_id: ended.id.clone(),
            outcome: ended.state,
            decided_by: ended.decided_by.clone(),
            reason: ended.reason.clone(),
        });
        Ok(ended)
    }

    async fn run_tool(&mut self, agent: &AgentRecord, call: &ToolCall, input: Value) -> Result<ToolOutcome, Failure> {
        self.append(MessageBody::Custom { kind: STARTED_KIND.into(), payload: json!({ "tool_call_id": call.id }) })
            .await?;
        let settings = &self.inner.settings;
        if let Some(external) = self.extras.external.clone().filter(|e| e.has(&call.name)) {
            let (content, is_error) = tokio::select! {
                done = external.call(&call.name, &call.id, input) => done,
                _ = self.request.cancel.cancelled() => {
                    ("The turn was cancelled while the program ran this tool.".to_string(), true)
                }
            };
            // The program's own words, as far as the daemon can tell (see
            // SECURITY.md: what its tools return is not tracked).
            return Ok(ToolOutcome { content, is_error, read_from: Vec::new(), from_outside: false });
        }
        let (workdir, sandbox) = self.inner.workplace(self.extras.place.as_deref());
        let env = ToolEnv {
            store: self.inner.store.clone(),
            agent_id: agent.id.clone(),
            conversation_id: self.context.conversation_id.clone(),
            search_all: settings.tools.conversation_search_all && self.context.tier == Tier::Admin,
            sender: self.context.sender.clone(),
            tier: self.context.tier,
            chat: self.context.chat.clone(),
            memory_lock: self.inner.memory_lock.clone(),
            workdir,
            sandbox,
            web: WebOptions { allow_private_network: settings.tools.webfetch_allow_private_network },
        };
        // A command or a fetch stops when the turn is cancelled (the command with
        // everything it started); tools that change state finish what they began.
        let stoppable = matches!(call.name.as_str(), "Bash" | "WebFetch");
        let outcome = tokio::select! {
            outcome = tools::run(&env, &call.name, input) => outcome,
            _ = self.request.cancel.cancelled(), if stoppable => ToolOutcome::error(
                "The turn was cancelled while this tool ran; it was stopped before it finished.",
            ),
        };
        tracing::info!(tool = %call.name, is_error = outcome.is_error, "tool call finished");
        Ok(self.reading_others(outcome).await)
    }

    /// A result that shows a guest's words from another conversation, or anyone's
    /// from outside (a fetched page), brings them into this one (its transcript
    /// keeps them): noted before the result goes in, so memory edits ask from now
    /// on, in this turn and every later one.
    async fn reading_others(&mut self, outcome: ToolOutcome) -> ToolOutcome {
        if outcome.read_from.is_empty() && !outcome.from_outside {
            return outcome;
        }
        let heard = self.inner.heard.clone();
        // Known as noted already (not merely assumed, as when the store could not
        // tell as the turn began): nothing to store.
        if heard.known_here(&self.context.conversation_id) {
            self.context.guests_heard = true;
            return outcome;
        }
        if !outcome.from_outside && !heard.any_heard(&outcome.read_from).await {
            return outcome;
        }
        if let Err(e) = heard.note(&self.context.conversation_id).await {
            tracing::error!(error = %e, "cannot note that a tool read a guest's or an outsider's words");
            let what = if outcome.from_outside { "The page" } else { "Past conversations" };
            return ToolOutcome::error(format!("{what} could not be read; try again."));
        }
        self.context.guests_heard = true;
        outcome
    }
}
