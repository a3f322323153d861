//! Runs one turn in the terminal: shows its stream (live text and tool lines, JSON
//! lines, or nothing until the end) and answers its approval requests, by asking at
//! the terminal or automatically (fail-closed unless `--yes`). Ctrl-C cancels the
//! turn, which also denies a pending approval.

use std::io::Write;

use switchboard::agent::{SdkMessage, StreamDelta, TurnResult};
use switchboard::policy::approvals::{outcome_text, request_text, Choice, Decider};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use super::render::{clip, tool_call_line};
use super::terminal::Terminal;
use switchboard::store::ApprovalState;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Reply text as it streams, one line per tool call and approval.
    Live,
    /// Every SDK message as one JSON object a line.
    Json,
    /// Nothing; the caller prints the result.
    Quiet,
}

/// Who answers approval requests.
pub enum Answerer<'a> {
    /// Ask at the terminal, reading the answer from these lines.
    Terminal(&'a mut Lines<BufReader<Stdin>>),
    /// Answer every request the same way, saying why.
    Auto(Choice, &'static str),
}

impl Answerer<'_> {
    /// `--yes` allows once; otherwise deny, since nobody can be asked.
    pub fn unattended(yes: bool) -> Answerer<'static> {
        if yes {
            Answerer::Auto(Choice::AllowOnce, "allowed by --yes")
        } else {
            Answerer::Auto(Choice::Deny, "nobody can approve here: input is not a terminal (use --yes to allow)")
        }
    }
}

pub fn console_decider() -> Decider {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    Decider::Operator { via: format!("command line: uid {uid}, pid {}", std::process::id()) }
}

/// Streams the session's current turn to its end and returns its result.
pub async fn run(
    session: &mut Terminal,
    display: Display,
    answerer: &mut Answerer<'_>,
) -> anyhow::Result<Option<TurnResult>> {
    let cancel = session.canceller();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let mut out = std::io::stdout();
    let mut mid_line = false;
    // After a refused approval the tool's result only repeats it.
    let mut refusal_shown = false;
    let mut result = None;
    while let Some(message) = session.next().await {
        if display == Display::Json {
            writeln!(out, "{}", serde_json::to_string(&message)?)?;
            out.flush()?;
        }
        match &message {
            SdkMessage::StreamEvent { event: StreamDelta::Text(delta) } if display == Display::Live => {
                write!(out, "{delta}")?;
                out.flush()?;
                mid_line = !delta.ends_with('\n');
            }
            SdkMessage::ToolCall { tool_name, tool_input, .. } if display == Display::Live => {
                end_line(&mut out, &mut mid_line)?;
                writeln!(out, "  ⚙ {}", tool_call_line(tool_name, tool_input))?;
            }
            SdkMessage::ToolResult { .. } if display == Display::Live && refusal_shown => refusal_shown = false,
            SdkMessage::ToolResult { content, is_error: true, .. } if display == Display::Live => {
                writeln!(out, "    ↳ {}", clip(content, 160))?;
            }
            SdkMessage::ApprovalRequest { approval_id, summary, .. } => {
                end_line(&mut out, &mut mid_line)?;
                let (choice, reason) = match answerer {
                    Answerer::Terminal(lines) => (ask(lines, summary, &cancel).await?, None),
                    Answerer::Auto(choice, why) => (*choice, Some(why.to_string())),
                };
                session.decide(approval_id, choice, reason).await;
            }
            SdkMessage::ApprovalResolved { outcome, decided_by, reason, .. } if display == Display::Live => {
                let why = reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                writeln!(out, "    ↳ {}{why}", outcome_text(*outcome, decided_by.as_deref()))?;
                refusal_shown = !matches!(outcome, ApprovalState::AllowedOnce | ApprovalState::AllowedAlways);
            }
            SdkMessage::Result(r) => {
                if display == Display::Live {
                    end_line(&mut out, &mut mid_line)?;
                }
                result = Some(r.clone());
            }
            _ => {}
        }
    }
    ctrl_c.abort();
    Ok(result)
}

/// Asks at the terminal until the answer is one of the choices; end of input or a
/// cancelled turn denies.
async fn ask(
    lines: &mut Lines<BufReader<Stdin>>,
    summary: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Choice> {
    loop {
        eprint!("  ? {} [o]nce / [a]lways here / [d]eny: ", request_text(summary));
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = cancel.cancelled() => {
                eprintln!();
                return Ok(Choice::Deny);
            }
        };
        let Some(line) = line else { return Ok(Choice::Deny) };
        if let Some(choice) = Choice::parse(&line) {
            return Ok(choice);
        }
    }
}

fn end_line(out: &mut std::io::Stdout, mid_line: &mut bool) -> std::io::Result<()> {
    if *mid_line {
        writeln!(out)?;
        *mid_line = false;
    }
    Ok(())
}

/// Standard input as lines, for chat turns and approval answers alike.
pub fn stdin_lines() -> Lines<BufReader<Stdin>> {
    BufReader::new(tokio::io::stdin()).lines()
}
