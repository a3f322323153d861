//! The daemon's side of the control socket: the operator's approval and pairing
//! commands, answered by the running gateway.

use async_trait::async_trait;

use super::Gateway;
use crate::control::{render_approvals, render_audit, render_pairing, Answer, Handler, Request};
use crate::policy::approvals::{Choice, DecideError, Decider};

pub struct Operator {
    pub gateway: Gateway,
}

#[async_trait]
impl Handler for Operator {
    async fn handle(&self, request: Request) -> Answer {
        let gw = &self.gateway.inner;
        let result = match request {
            Request::ApprovalsList { all } => {
                gw.backend.approvals().await.map(|a| Answer::ok(render_approvals(&a, all)))
            }
            Request::ApprovalsAudit => gw.backend.audit_log().await.map(|r| Answer::ok(render_audit(&r))),
            Request::PairingList { channel } => {
                gw.access.pending(&channel).await.map(|p| Answer::ok(render_pairing(&p, &channel))).map_err(Into::into)
            }
            Request::PairingApprove { channel, code } => {
                return match gw.access.approve(&channel, &code, "console").await {
                    Ok(Some(r)) => Answer::ok(format!("paired {} ({})\n", r.name, r.user)),
                    Ok(None) => {
                        Answer::failed(format!("{code} is not a pending pairing code on {channel} (or it expired)"))
                    }
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::ApprovalsDecide { id, choice, reason } => return self.decide(&id, &choice, reason).await,
        };
        result.unwrap_or_else(|e| Answer::failed(e.to_string()))
    }
}

impl Operator {
    async fn decide(&self, id: &str, choice: &str, reason: Option<String>) -> Answer {
        let gw = &self.gateway.inner;
        let choice = match choice {
            "once" => Choice::AllowOnce,
            "always" => Choice::AlwaysAllowHere,
            _ => Choice::Deny,
        };
        let operator = Decider { id: crate::gateway::OPERATOR.into(), operator: true };
        match gw.backend.decide_approval(id, &operator, choice, reason).await {
            Ok(decided) => {
                let a = &decided.approval;
                if !decided.waiter_woken {
                    // Left pending by an earlier run: update its prompt and let the
                    // turn continue in its chat.
                    let prompt = gw.prompt(&a.id).await;
                    gw.resolve_prompt(&a.id, a.state.as_str(), Some(crate::gateway::OPERATOR)).await;
                    if let Some(prompt) = prompt {
                        let sender = switchboard_channel_core::Sender {
                            id: a.requester.clone().unwrap_or_default(),
                            name: String::new(),
                            is_bot: false,
                        };
                        gw.resume_after_restart(a, &prompt.chat, &sender).await;
                    }
                }
                Answer::ok(format!("{}: {}; the agent continues in its chat.\n", a.summary, a.state.as_str()))
            }
            Err(DecideError::NotPending) => Answer::failed(format!("{id} is not a pending approval request")),
            Err(e) => Answer::failed(e.to_string()),
        }
    }
}
