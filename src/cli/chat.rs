//! `switchboard chat`: an interactive conversation in the terminal. Reply text streams
//! as it arrives, each tool call shows as one line, and approvals are asked inline.
//! With piped input, each line is one turn, approvals are denied unless `--yes`, and
//! the command exits at the end of input.

use std::io::IsTerminal;

use switchboard::agent::{AgentBackend, Session, StopReason};
use switchboard::store::ApprovalState;

use super::app::{not_found_hint, App};
use super::turn_view::{self, Answerer, Display};
use super::EXIT_FAILURE;

pub async fn run(
    app: &App,
    agent: Option<&str>,
    conversation: Option<&str>,
    new: bool,
    yes: bool,
) -> anyhow::Result<i32> {
    let options = App::console_session();
    let mut session = match conversation {
        Some(id) => app.backend.resume_session(id, options).await.map_err(not_found_hint)?,
        None => {
            let agent_id = app.agent_id(agent).await?;
            if new {
                app.backend.create_session(&agent_id, options).await?
            } else {
                app.backend.resume_session(&agent_id, options).await?
            }
        }
    };
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        let details = app.backend.agent(session.agent_id()).await?;
        eprintln!(
            "Talking with {} ({}) in {}. Ctrl-C stops a reply; Ctrl-D or /quit leaves.",
            details.agent.name,
            session.agent_id(),
            session.conversation_id()
        );
    }
    let mut lines = turn_view::stdin_lines();
    let mut failed_turns = 0;

    // A turn cut off before a restart, waiting for an approval, is finished first.
    if has_pending_approval(app, session.conversation_id()).await? {
        eprintln!("A tool call from before the last restart is waiting for approval.");
        session.resume()?;
        if !turn(app, &mut session, interactive, yes, &mut lines).await? {
            failed_turns += 1;
        }
    }
    loop {
        if interactive {
            eprint!("> ");
        }
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/quit" || line == "/exit" {
            break;
        }
        session.send(line)?;
        if !turn(app, &mut session, interactive, yes, &mut lines).await? {
            failed_turns += 1;
        }
    }
    if interactive {
        eprintln!();
    }
    Ok(if failed_turns > 0 && !interactive { EXIT_FAILURE } else { 0 })
}

/// Shows the turn just started; returns whether it succeeded.
async fn turn(
    app: &App,
    session: &mut Session,
    interactive: bool,
    yes: bool,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
) -> anyhow::Result<bool> {
    let mut answerer = if interactive { Answerer::Terminal(lines) } else { Answerer::unattended(yes) };
    let Some(result) = turn_view::run(app, session, Display::Live, &mut answerer).await? else { return Ok(false) };
    if let Some(error) = &result.error {
        eprintln!("error: {error}");
    } else if result.stop_reason == StopReason::Cancelled {
        eprintln!("(cancelled)");
    } else if result.stop_reason == StopReason::MaxSteps {
        eprintln!("(stopped after the step limit, agent.max_steps)");
    }
    Ok(result.success)
}

async fn has_pending_approval(app: &App, conversation_id: &str) -> anyhow::Result<bool> {
    let approvals = app.backend.approvals().await?;
    Ok(approvals.iter().any(|a| a.conversation_id == conversation_id && a.state == ApprovalState::Pending))
}
