//! `switchboard chat`: an interactive conversation in the terminal. Reply text streams
//! as it arrives, each tool call shows as one line, and approvals are asked inline.
//! With piped input, each line is one turn, approvals are denied unless `--yes`, and
//! the command exits at the end of input. Beside a running `serve`, the session runs
//! there.

use std::io::IsTerminal;
use std::path::Path;

use switchboard::agent::StopReason;
use switchboard::console::ConsoleTarget;

use super::terminal::Terminal;
use super::turn_view::{self, Answerer, Display};
use super::EXIT_FAILURE;

pub async fn run(
    config: Option<&Path>,
    agent: Option<&str>,
    conversation: Option<&str>,
    new: bool,
    yes: bool,
) -> anyhow::Result<i32> {
    let agent = agent.map(str::to_string);
    let target = match conversation {
        Some(id) => ConsoleTarget::Conversation { id: id.to_string(), agent: None },
        None if new => ConsoleTarget::New { agent },
        None => ConsoleTarget::Default { agent },
    };
    let (mut session, opened) = Terminal::open(config, target).await?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Talking with {} ({}) in {}. Ctrl-C stops a reply; Ctrl-D or /quit leaves.",
            opened.agent_name, opened.agent_id, opened.conversation_id
        );
    }
    let mut lines = turn_view::stdin_lines();
    let mut failed_turns = 0;

    // A turn cut off before a restart, waiting for an approval, is finished first.
    if opened.pending_approval {
        eprintln!("A tool call from before the last restart is waiting for approval.");
        session.resume()?;
        if !turn(&mut session, interactive, yes, &mut lines).await? {
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
        session.send(line.to_string())?;
        if !turn(&mut session, interactive, yes, &mut lines).await? {
            failed_turns += 1;
        }
    }
    if interactive {
        eprintln!();
    }
    session.close().await;
    Ok(if failed_turns > 0 && !interactive { EXIT_FAILURE } else { 0 })
}

/// Shows the turn just started; returns whether it succeeded.
async fn turn(
    session: &mut Terminal,
    interactive: bool,
    yes: bool,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
) -> anyhow::Result<bool> {
    let mut answerer = if interactive { Answerer::Terminal(lines) } else { Answerer::unattended(yes) };
    let Some(result) = turn_view::run(session, Display::Live, &mut answerer).await? else { return Ok(false) };
    if let Some(error) = &result.error {
        eprintln!("error: {error}");
    } else if result.stop_reason == StopReason::Cancelled {
        eprintln!("(cancelled)");
    } else if result.stop_reason == StopReason::MaxSteps {
        eprintln!("(stopped after the step limit, agent.max_steps)");
    }
    Ok(result.success)
}
