//! `switchboard chat`: an interactive conversation in the terminal. Reply text streams
//! as it arrives and each tool call shows as one line. With piped input, each line is
//! one turn and the command exits at the end of input.

use std::io::{IsTerminal, Write};

use switchboard::agent::{AgentBackend, SdkMessage, Session, SessionOptions, StopReason, StreamDelta};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::app::{not_found_hint, App};
use super::render::tool_call_line;
use super::EXIT_FAILURE;

pub async fn run(app: &App, agent: Option<&str>, conversation: Option<&str>, new: bool) -> anyhow::Result<i32> {
    let mut session = match conversation {
        Some(id) => app.backend.resume_session(id, SessionOptions::default()).await.map_err(not_found_hint)?,
        None => {
            let agent_id = app.agent_id(agent).await?;
            if new {
                app.backend.create_session(&agent_id, SessionOptions::default()).await?
            } else {
                app.backend.resume_session(&agent_id, SessionOptions::default()).await?
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
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut failed_turns = 0;
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
        if !turn(&mut session, line).await? {
            failed_turns += 1;
        }
    }
    if interactive {
        eprintln!();
    }
    Ok(if failed_turns > 0 && !interactive { EXIT_FAILURE } else { 0 })
}

/// Runs one turn, printing as it goes; returns whether it succeeded.
async fn turn(session: &mut Session, text: &str) -> anyhow::Result<bool> {
    session.send(text)?;
    let cancel = session.canceller();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let mut out = std::io::stdout().lock();
    let mut mid_line = false;
    let mut ok = false;
    while let Some(message) = session.next().await {
        match message {
            SdkMessage::StreamEvent { event: StreamDelta::Text(delta) } => {
                write!(out, "{delta}")?;
                out.flush()?;
                mid_line = !delta.ends_with('\n');
            }
            SdkMessage::ToolCall { tool_name, tool_input, .. } => {
                if mid_line {
                    writeln!(out)?;
                    mid_line = false;
                }
                writeln!(out, "  ⚙ {}", tool_call_line(&tool_name, &tool_input))?;
            }
            SdkMessage::ToolResult { content, is_error: true, .. } => {
                writeln!(out, "    ↳ {}", super::render::clip(&content, 160))?;
            }
            SdkMessage::Result(result) => {
                if mid_line {
                    writeln!(out)?;
                }
                out.flush()?;
                ok = result.success;
                if let Some(error) = &result.error {
                    eprintln!("error: {error}");
                } else if result.stop_reason == StopReason::Cancelled {
                    eprintln!("(cancelled)");
                } else if result.stop_reason == StopReason::MaxSteps {
                    eprintln!("(stopped after the step limit, agent.max_steps)");
                }
            }
            _ => {}
        }
    }
    ctrl_c.abort();
    Ok(ok)
}
