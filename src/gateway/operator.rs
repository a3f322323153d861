//! The daemon's side of the control socket: the operator's approval and pairing
//! commands, answered by the running gateway through the same decision path as
//! a chat.

use std::sync::Arc;

use async_trait::async_trait;

use super::decisions::{Decisions, Via};
use super::pairing::Pairing;
use crate::agent::AgentBackend;
use crate::channels::REGISTERED;
use crate::control::{
    render_approval, render_approvals, render_audit, render_grants, render_pairing, Answer, Handler, Peer, Request,
};
use crate::policy::approvals::{DecideError, Decider, OPERATOR};
use crate::store::{blocking, render_sizes, Store};

/// How many of the store's largest parts `check` lists.
pub const LARGEST_SHOWN: usize = 6;

#[derive(Clone)]
pub struct Operator {
    pub(super) backend: Arc<dyn AgentBackend>,
    /// For `check`'s report of what the store holds.
    pub(super) store: Arc<dyn Store>,
    /// Masked in what the operator is shown.
    pub(super) secrets: Vec<String>,
    pub(super) pairing: Pairing,
    pub(super) decisions: Decisions,
    /// `[llm] model`, shown for agents that follow it.
    pub(super) default_model: String,
}

#[async_trait]
impl Handler for Operator {
    async fn handle(&self, request: Request, peer: &Peer) -> Answer {
        let via = peer.describe();
        let result = match request {
            Request::ApprovalsList { all } => {
                self.backend.approvals().await.map(|a| Answer::ok(render_approvals(&a, all)))
            }
            Request::ApprovalsAudit => self.backend.audit_log().await.map(|r| Answer::ok(render_audit(&r))),
            Request::StoreSizes => {
                return match blocking(&self.store, |s| s.sizes()).await {
                    Ok(sizes) => Answer::ok(render_sizes(&sizes, LARGEST_SHOWN)),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::GrantsList { chat } => {
                self.backend.grants(chat.as_deref()).await.map(|g| Answer::ok(render_grants(&g)))
            }
            Request::GrantsRevoke { id } => {
                return match self.backend.revoke_grant(&id).await {
                    Ok(true) => Answer::ok(format!("revoked {id}\n")),
                    Ok(false) => Answer::failed(format!("there is no grant {id}")),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::ApprovalsShow { id } => {
                return match self.backend.approvals().await.map(|all| all.into_iter().find(|a| a.id == id)) {
                    Ok(Some(a)) => Answer::ok(render_approval(&a, &self.secrets)),
                    Ok(None) => Answer::failed(format!("there is no approval request {id}")),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::PairingList { channel } => {
                let mut out = String::new();
                for name in channel.map_or_else(|| REGISTERED.iter().map(|c| c.name.to_string()).collect(), |c| vec![c])
                {
                    match self.pairing.pending(&name).await {
                        Ok(pending) => out.push_str(&render_pairing(&pending, &name)),
                        Err(e) => return Answer::failed(e.to_string()),
                    }
                }
                Ok(Answer::ok(out))
            }
            Request::PairingApprove { channel, code } => {
                return match self.pairing.approve(&channel, &code, &format!("{OPERATOR} ({via})")).await {
                    Ok(Some(r)) => Answer::ok(format!("paired {} ({})\n", r.name, r.user)),
                    Ok(None) => {
                        Answer::failed(format!("{code} is not a pending pairing code on {channel} (or it expired)"))
                    }
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::PairingReject { channel, code } => {
                return match self.pairing.reject(&channel, &code).await {
                    Ok(Some(r)) => Answer::ok(format!("rejected the code of {} ({})\n", r.name, r.user)),
                    Ok(None) => Answer::failed(format!("{code} is not a pending pairing code on {channel}")),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::PairingRevoke { user } => {
                return match self.pairing.revoke(&user).await {
                    Ok(true) => Answer::ok(format!("unpaired {user}\n")),
                    Ok(false) => Answer::failed(format!("{user} is not paired (ids look like telegram:42)")),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::ApprovalsDecide { id, choice, reason } => {
                let operator = Decider::Operator { via: format!("control socket: {via}") };
                return match self.decisions.decide(&id, &operator, choice, reason, Via::Operator).await {
                    Ok(a) => {
                        Answer::ok(format!("{}: {}; the agent continues in its chat.\n", a.summary, a.state.as_str()))
                    }
                    Err(DecideError::NotPending) => Answer::failed(format!("{id} is not a pending approval request")),
                    Err(e) => Answer::failed(e.to_string()),
                };
            }
            Request::Admin { request } => {
                return crate::admin::answer_remote(&*self.backend, &self.default_model, request).await;
            }
            // Answered by the control socket itself, with the daemon's engine.
            Request::Engine { .. } | Request::Console { .. } => {
                return Answer::failed("a session needs its own connection".into())
            }
        };
        result.unwrap_or_else(|e| Answer::failed(e.to_string()))
    }
}
