//! `switchboard prompt`: one turn, printed as text or as one JSON object per message.
//! Approvals are asked at the terminal when there is one, else denied unless `--yes`.

use std::io::{IsTerminal, Read};

use std::path::Path;

use anyhow::Context;
use switchboard::agent::StopReason;
use switchboard::console::ConsoleTarget;

use super::terminal::Terminal;
use super::turn_view::{self, Answerer, Display};
use super::{OutputFormat, EXIT_CANCELLED, EXIT_FAILURE};

pub async fn run(
    config: Option<&Path>,
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
    let agent = agent.map(str::to_string);
    let target = match conversation {
        Some(id) => ConsoleTarget::Conversation { id: id.to_string(), agent },
        None => ConsoleTarget::New { agent },
    };
    let (mut session, _) = Terminal::open(config, target).await?;
    session.send(text)?;

    let mut lines = turn_view::stdin_lines();
    let mut answerer = if !from_stdin && !yes && std::io::stdin().is_terminal() {
        Answerer::Terminal(&mut lines)
    } else {
        Answerer::unattended(yes)
    };
    let display = if format == OutputFormat::StreamJson { Display::Json } else { Display::Quiet };
    let Some(result) = turn_view::run(&mut session, display, &mut answerer).await? else {
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
    std::io::Write::flush(&mut std::io::stdout())?;
    session.close().await;
    Ok(match (result.success, result.stop_reason) {
        (true, _) => 0,
        (false, StopReason::Cancelled) => EXIT_CANCELLED,
        (false, _) => EXIT_FAILURE,
    })
}
