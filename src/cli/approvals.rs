//! `switchboard approvals …`: list pending requests, decide one as the operator (which
//! also finishes the turn that waited for it), and read the audit log.

use clap::Subcommand;
use switchboard::agent::{AgentBackend, SessionOptions, StopReason};
use switchboard::control::{render_approval, render_approvals, render_audit, Request};
use switchboard::policy::approvals::{Choice, DecideError};
use switchboard::policy::Tier;

use super::app::App;
use super::terminal::Terminal;
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
    /// One request with its whole call (what a chat may have seen cut short)
    Show { id: String },
}

/// The same command for a running daemon (which holds the data directory).
pub fn request(command: &ApprovalsCommand) -> Request {
    match command {
        ApprovalsCommand::List { all } => Request::ApprovalsList { all: *all },
        ApprovalsCommand::Audit => Request::ApprovalsAudit,
        ApprovalsCommand::Show { id } => Request::ApprovalsShow { id: id.clone() },
        ApprovalsCommand::Allow { id, always } => {
            let choice = if *always { Choice::AlwaysAllowHere } else { Choice::AllowOnce };
            Request::ApprovalsDecide { id: id.clone(), choice, reason: None }
        }
        ApprovalsCommand::Deny { id, reason } => {
            Request::ApprovalsDecide { id: id.clone(), choice: Choice::Deny, reason: reason.clone() }
        }
    }
}

pub async fn run(app: &App, command: ApprovalsCommand) -> anyhow::Result<i32> {
    match command {
        ApprovalsCommand::List { all } => {
            print!("{}", render_approvals(&app.backend.approvals().await?, all));
            Ok(0)
        }
        ApprovalsCommand::Audit => {
            print!("{}", render_audit(&app.backend.audit_log().await?));
            Ok(0)
        }
        ApprovalsCommand::Show { id } => match app.backend.approvals().await?.into_iter().find(|a| a.id == id) {
            Some(a) => {
                print!("{}", render_approval(&a, &app.settings.secrets()));
                Ok(0)
            }
            None => {
                eprintln!("error: there is no approval request {id}; see `switchboard approvals list --all`");
                Ok(EXIT_FAILURE)
            }
        },
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
    let options = SessionOptions {
        chat: approval.chat.clone(),
        sender: approval.requester.clone(),
        // As the person who asked was judged then (a record from before tiers: a guest).
        tier: approval.requester_tier.unwrap_or(Tier::Guest),
        in_group: approval.in_group,
        ..Default::default()
    };
    let mut session = app.backend.resume_session(&approval.conversation_id, options).await?;
    session.resume()?;
    // Other requests of the same turn are not this command's to decide: deny them.
    let mut answerer = Answerer::Auto(Choice::Deny, "decided from the command line one request at a time");
    let mut session = Terminal::Local { backend: app.backend.clone(), session, served: None };
    let Some(result) = turn_view::run(&mut session, Display::Quiet, &mut answerer).await? else {
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
