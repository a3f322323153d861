//! `switchboard prompt`: one turn, printed as text or as one JSON object per message.

use std::io::{Read, Write};

use anyhow::Context;
use switchboard::agent::{AgentBackend, SdkMessage, Session, SessionOptions, StopReason};

use super::app::{not_found_hint, App};
use super::{OutputFormat, EXIT_CANCELLED, EXIT_FAILURE};

pub async fn run(
    app: &App,
    agent: Option<&str>,
    conversation: Option<&str>,
    format: OutputFormat,
    text: &str,
) -> anyhow::Result<i32> {
    let text = if text == "-" {
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
    let cancel = session.canceller();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let mut stdout = std::io::stdout().lock();
    let mut code = EXIT_FAILURE;
    while let Some(message) = session.next().await {
        if format == OutputFormat::StreamJson {
            writeln!(stdout, "{}", serde_json::to_string(&message)?)?;
            stdout.flush()?;
        }
        if let SdkMessage::Result(result) = message {
            code = match (result.success, result.stop_reason) {
                (true, _) => 0,
                (false, StopReason::Cancelled) => EXIT_CANCELLED,
                (false, _) => EXIT_FAILURE,
            };
            if format == OutputFormat::Text && result.success {
                writeln!(stdout, "{}", result.result.as_deref().unwrap_or(""))?;
            }
            if let Some(error) = &result.error {
                eprintln!("error: {error}");
            } else if result.stop_reason == StopReason::Cancelled {
                eprintln!("cancelled");
            }
        }
    }
    ctrl_c.abort();
    Ok(code)
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
            Ok(app.backend.resume_session(id, SessionOptions::default()).await?)
        }
        None => {
            let agent_id = app.agent_id(agent).await?;
            Ok(app.backend.create_session(&agent_id, SessionOptions::default()).await?)
        }
    }
}
