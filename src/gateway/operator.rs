//! The daemon's side of the control socket: the operator's decisions and pairing
//! commands, answered by the running gateway through the same decision path as a
//! chat; the store-only requests as every holder of the data directory answers them.

use async_trait::async_trait;

use super::decisions::{Decisions, Via};
use super::pairing::Pairing;
use crate::admin::StoreRequests;
use crate::channels::REGISTERED;
use crate::control::{render_pairing, Answer, Handler, Peer, Request};
use crate::policy::approvals::{DecideError, Decider, OPERATOR};

#[derive(Clone)]
pub struct Operator {
    /// Approvals, grants, agents, conversations, the store's size.
    pub(super) store_requests: StoreRequests,
    pub(super) pairing: Pairing,
    pub(super) decisions: Decisions,
}

#[async_trait]
impl Handler for Operator {
    async fn handle(&self, request: Request, peer: &Peer) -> Answer {
        let via = peer.describe();
        let request = match self.store_requests.answer(request).await {
            Ok(answer) => return answer,
            Err(request) => request,
        };
        match request {
            Request::PairingList { channel } => {
                let mut out = String::new();
                for name in channel.map_or_else(|| REGISTERED.iter().map(|c| c.name.to_string()).collect(), |c| vec![c])
                {
                    match self.pairing.pending(&name).await {
                        Ok(pending) => out.push_str(&render_pairing(&pending, &name)),
                        Err(e) => return Answer::failed(e.to_string()),
                    }
                }
                Answer::ok(out)
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
            // Answered by the control socket itself, with the daemon's engine.
            Request::Engine { .. } | Request::Console { .. } => {
                return Answer::failed("a session needs its own connection".into())
            }
            // Answered above.
            Request::ApprovalsList { .. }
            | Request::ApprovalsAudit
            | Request::ApprovalsShow { .. }
            | Request::GrantsList { .. }
            | Request::GrantsRevoke { .. }
            | Request::StoreSizes
            | Request::Admin { .. }
            // Answered by the daemon's handler, which has the whole gateway.
            | Request::Status => return Answer::failed("the request was not understood".into()),
        }
    }
}
