//! `switchboard approvals …`: list pending requests, decide one as the operator (which
//! also finishes the turn that waited for it), and read the audit log.

use clap::Subcommand;
use switchboard::agent::{AgentBackend, SessionOptions, StopReason};
use switchboard::policy::approvals::{Choice, DecideError};
use switchboard::store::ApprovalState;

use super::app::App;
use super::render::time;
use super::turn_view::{self, console_decider, Answerer, Display};
use super::EXIT_FAILURE;

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// Pending requests (every request with --all)
    List {
        #[arg(long)]
        all: bool,
    },
    /// Allow a pending request (once, or always in its chat) and finish its turn
    Allow {
        id: String,
        #[arg(long)]
        always: bool,
    },
    /// Deny a pending request and finish its turn
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every decision, expiry and refused attempt, oldest first
    Audit,
}

pub async fn run(app: &App, command: ApprovalsCommand) -> anyhow::Result<i32> {
    match command {
        ApprovalsCommand::List { all } => {
            let approvals = app.backend.approvals().await?;
            let shown: Vec<_> = approvals.iter().filter(|a| all || a.state == ApprovalState::Pending).collect();
            if shown.is_empty() {
                println!("{}", if all { "No approval requests." } else { "No pending approval requests." });
            }
            for a in shown {
                println!(
                    "{}  {}  {}  chat={}  requester={}  expires={}  conversation={}",
                    a.id,
                    a.state.as_str(),
                    a.summary,
                    a.chat.as_deref().unwrap_or("-"),
                    a.requester.as_deref().unwrap_or("-"),
                    time(a.expires_at),
                    a.conversation_id
                );
            }
            Ok(0)
        }
        ApprovalsCommand::Audit => {
            for r in app.backend.audit_log().await? {
                println!(
                    "{}  {}  {}  by={}  chat={}  {}{}",
                    time(r.at),
                    r.outcome,
                    r.summary,
                    r.actor.as_deref().unwrap_or("-"),
                    r.chat.as_deref().unwrap_or("-"),
                    r.approval_id,
                    r.reason.map(|why| format!("  reason: {why}")).unwrap_or_default()
                );
            }
            Ok(0)
        }
        ApprovalsCommand::Allow { id, always } => {
            let choice = if always { Choice::AlwaysAllowHere } else { Choice::AllowOnce };
            decide_and_finish(app, &id, choice, None).await
        }
        ApprovalsCommand::Deny { id, reason } => decide_and_finish(app, &id, Choice::Deny, reason).await,
    }
}

/// Records the decision, then resumes the conversation so the tool runs (or the agent
/// hears the denial) and the agent finishes its turn; prints its reply.
async fn decide_and_finish(app: &App, id: &str, choice: Choice, reason: Option<String>) -> anyhow::Result<i32> {
    let decided = match app.backend.decide_approval(id, &console_decider(), choice, reason).await {
        Ok(d) => d,
        Err(DecideError::NotPending) => anyhow::bail!("{id} is not a pending approval request"),
        Err(e) => return Err(e.into()),
    };
    eprintln!("{}: {}", decided.approval.summary, decided.approval.state.as_str());
    // The rest of the turn is judged as in the chat that asked, not as the console.
    let approval = &decided.approval;
    let options =
        SessionOptions { chat: approval.chat.clone(), sender: approval.requester.clone(), ..Default::default() };
    let mut session = app.backend.resume_session(&approval.conversation_id, options).await?;
    session.resume()?;
    // Other requests of the same turn are not this command's to decide: deny them.
    let mut answerer = Answerer::Auto(Choice::Deny, "decided from the command line one request at a time");
    let Some(result) = turn_view::run(app, &mut session, Display::Quiet, &mut answerer).await? else {
        anyhow::bail!("the turn ended without a result");
    };
    if let Some(error) = &result.error {
        eprintln!("error: {error}");
        return Ok(EXIT_FAILURE);
    }
    if result.stop_reason == StopReason::Cancelled {
        eprintln!("cancelled");
        return Ok(EXIT_FAILURE);
    }
    if let Some(text) = &result.result {
        println!("{text}");
    }
    Ok(0)
}
