//! Control requests from the SDK (`letta-code-wire.md` §3.2, §5.6) other than
//! `interrupt` and `register_external_tools`: each answered on its own task, so a
//! running turn never holds one up.

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::letta::{self, Query};
use super::Engine;

/// What control requests need, shared with the tasks that answer them.
pub(super) struct Context {
    pub engine: Engine,
    pub out: mpsc::UnboundedSender<Value>,
    pub agent_id: String,
    pub conversation_id: String,
    pub model: String,
    pub tools: Vec<String>,
    /// `--include-partial-messages`.
    pub partial: bool,
    /// False from a turn's start until its user message is surely in the
    /// transcript (it has said something, or ended).
    pub recorded: watch::Sender<bool>,
}

/// Waits (a little at most) until the running turn's message is in the
/// transcript, so a listing made during the turn shows it.
async fn recorded(turn: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), turn.wait_for(|r| *r)).await;
}

impl Context {
    /// Answers a control request other than `interrupt` on its own task, so a
    /// running turn never holds it up.
    pub fn answer(&self, id: Value, subtype: &str, request: Value) {
        let (engine, out) = (self.engine.clone(), self.out.clone());
        let (agent_id, conversation_id) = (self.agent_id.clone(), self.conversation_id.clone());
        let (model, tools) = (self.model.clone(), self.tools.clone());
        let mut started_turn = self.recorded.subscribe();
        let subtype = subtype.to_string();
        tokio::spawn(async move {
            let answer = match subtype.as_str() {
                "initialize" => Ok(json!({
                    "agent_id": agent_id, "model": model, "tools": tools, "memfs_enabled": false,
                    "skill_sources": [], "system_info_reminder_enabled": true,
                })),
                "list_messages" => {
                    recorded(&mut started_turn).await;
                    let conversation = request["conversation_id"].as_str().unwrap_or(&conversation_id).to_string();
                    list(&engine, &conversation, &request).await.map(|page| {
                        json!({"messages": page.messages, "next_before": page.next_before, "has_more": page.has_more})
                    })
                }
                "bootstrap_session_state" => {
                    recorded(&mut started_turn).await;
                    bootstrap(&engine, &conversation_id, &request).await.map(|(page, pending)| {
                        json!({
                            "agent_id": agent_id, "conversation_id": conversation_id, "model": model, "tools": tools,
                            "memfs_enabled": false, "messages": page.messages, "next_before": page.next_before,
                            "has_more": page.has_more, "has_pending_approval": pending,
                        })
                    })
                }
                "recover_pending_approvals" => {
                    let conversation = request["conversation_id"].as_str().unwrap_or(&conversation_id).to_string();
                    engine
                        .backend
                        .cancel_approvals(&conversation, None, "recovered by the SDK: the process that asked is gone")
                        .await
                        .map(|cancelled| {
                            json!({"recovered": true, "pending_approval": false, "approvals_processed": cancelled.len()})
                        })
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("Unknown control request subtype: {other}")),
            };
            let line = match answer {
                Ok(body) => success(&id, Some(body)),
                Err(error) => {
                    json!({"type": "control_response", "response": {"subtype": "error", "request_id": id, "error": error}})
                }
            };
            let _ = out.send(line);
        });
    }
}

async fn list(engine: &Engine, conversation_id: &str, request: &Value) -> Result<letta::Page, String> {
    let query = Query::from_request(request)?;
    let entries = engine.backend.export_conversation(conversation_id).await.map_err(|e| e.to_string())?;
    letta::page(letta::messages(&entries), &query)
}

async fn bootstrap(engine: &Engine, conversation_id: &str, request: &Value) -> Result<(letta::Page, bool), String> {
    let page = list(engine, conversation_id, request).await?;
    let pending =
        crate::console::pending_approval(&*engine.backend, conversation_id).await.map_err(|e| e.to_string())?;
    Ok((page, pending))
}

pub(super) fn success(id: &Value, body: Option<Value>) -> Value {
    let mut response = json!({"subtype": "success", "request_id": id});
    if let Some(body) = body {
        response["response"] = body;
    }
    json!({"type": "control_response", "response": response})
}
