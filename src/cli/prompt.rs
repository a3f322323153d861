//! `switchboard prompt`: one turn, printed as text or as one JSON object per message.
//! Approvals are asked at the terminal when there is one, else denied unless `--yes`.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use switchboard::agent::{AgentBackend, Session, StopReason};

use super::app::{not_found_hint, App};
use super::turn_view::{self, Answerer, Display};
use super::{OutputFormat, EXIT_CANCELLED, EXIT_FAILURE};

pub async fn run(
    app: &App,
    agent: Option<&str>,
    conversation: Option<&str>,
    format: OutputFormat,
    yes: bool,
    text: &str,
) -> anyhow::Result<i32> {
    let from_stdin = text == "-";
    let text = if from_stdin {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).context("cannot read the message from standard input")?;
        input
    } else {
        text.to_string()
    };
    if text.trim().is_empty() {
        anyhow::bail!("the message is empty");
    }
    let mut session = open_session(app, agent, conversation).await?;
    session.send(text)?;

    let mut lines = turn_view::stdin_lines();
    let mut answerer = if !from_stdin && !yes && std::io::stdin().is_terminal() {
        Answerer::Terminal(&mut lines)
    } else {
        Answerer::unattended(yes)
    };
    let display = if format == OutputFormat::StreamJson { Display::Json } else { Display::Quiet };
    let Some(result) = turn_view::run(app, &mut session, display, &mut answerer).await? else {
        anyhow::bail!("the turn ended without a result");
    };
    if format == OutputFormat::Text && result.success {
        println!("{}", result.result.as_deref().unwrap_or(""));
    }
    if let Some(error) = &result.error {
        eprintln!("error: {error}");
    } else if result.stop_reason == StopReason::Cancelled {
        eprintln!("cancelled");
    }
    Ok(match (result.success, result.stop_reason) {
        (true, _) => 0,
        (false, StopReason::Cancelled) => EXIT_CANCELLED,
        (false, _) => EXIT_FAILURE,
    })
}

/// `--conversation` continues that conversation (and must belong to `--agent` when both
/// are given); otherwise a fresh conversation on the agent.
async fn open_session(app: &App, agent: Option<&str>, conversation: Option<&str>) -> anyhow::Result<Session> {
    match conversation {
        Some(id) => {
            let record = app.backend.conversation(id).await.map_err(not_found_hint)?;
            if let Some(agent) = agent.filter(|a| *a != record.agent_id) {
                anyhow::bail!("conversation {id} belongs to {}, not {agent}", record.agent_id);
            }
            Ok(app.backend.resume_session(id, App::console_session()).await?)
        }
        None => {
            let agent_id = app.agent_id(agent).await?;
            Ok(app.backend.create_session(&agent_id, App::console_session()).await?)
        }
    }
}
