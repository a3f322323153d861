//! A terminal session (`chat`, `prompt`) run by the switchboard that holds the data
//! directory, for a command started beside it: the command sends what the person
//! does ([`ConsoleCommand`]), one JSON object a line, and gets the session's
//! messages back ([`ConsoleEvent`]). The session is the console's, as if the
//! command had opened the store itself: chat `console`, the admin tier, the
//! configured policy, approvals decided by the operator at the terminal.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::agent::{AgentBackend, AgentError, SdkMessage, Session, SessionOptions};
use crate::policy::approvals::{Choice, Decider};
use crate::policy::Tier;
use crate::store::ApprovalState;

/// The chat and sender id of the terminal.
pub const CONSOLE: &str = "console";

/// The console's identity in chats and approvals.
pub fn console_session() -> SessionOptions {
    SessionOptions {
        chat: Some(CONSOLE.into()),
        sender: Some(CONSOLE.into()),
        tier: Tier::Admin,
        ..SessionOptions::default()
    }
}

/// Which conversation a terminal session talks in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsoleTarget {
    /// That conversation; it must belong to `agent` when one is named.
    Conversation { id: String, agent: Option<String> },
    /// A new conversation on the agent (the default agent when `None`).
    New { agent: Option<String> },
    /// The agent's default conversation (the default agent's when `None`).
    Default { agent: Option<String> },
}

/// What the person does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ConsoleCommand {
    Send {
        text: String,
    },
    /// Continue the conversation's unfinished turn.
    Resume,
    Cancel,
    Decide {
        approval_id: String,
        choice: Choice,
        reason: Option<String>,
    },
}

/// What the session says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConsoleEvent {
    /// First: where the session is.
    Opened {
        agent_id: String,
        agent_name: String,
        conversation_id: String,
        pending_approval: bool,
    },
    Message {
        message: SdkMessage,
    },
    /// A command could not be carried out (a decision on a request no longer
    /// pending is not an error); `ends_turn` when no turn runs because of it.
    Failed {
        error: String,
        ends_turn: bool,
    },
}

/// Opens the session `target` names.
pub async fn open(backend: &dyn AgentBackend, target: &ConsoleTarget) -> Result<Session, AgentError> {
    let options = console_session();
    match target {
        ConsoleTarget::Conversation { id, agent } => {
            let record = backend.conversation(id).await?;
            if let Some(agent) = agent.as_ref().filter(|a| **a != record.agent_id) {
                return Err(AgentError::Invalid(format!(
                    "conversation {id} belongs to {}, not {agent}",
                    record.agent_id
                )));
            }
            backend.resume_session(id, options).await
        }
        ConsoleTarget::New { agent } => {
            backend.create_session(&agent_id(backend, agent.as_deref()).await?, options).await
        }
        ConsoleTarget::Default { agent } => {
            backend.resume_session(&agent_id(backend, agent.as_deref()).await?, options).await
        }
    }
}

/// `agent`, checked, or the default agent.
pub async fn agent_id(backend: &dyn AgentBackend, agent: Option<&str>) -> Result<String, AgentError> {
    match agent {
        Some(id) => Ok(backend.agent(id).await?.agent.id),
        None => backend
            .default_agent()
            .await
            .map(|a| a.id)
            .map_err(|e| AgentError::Invalid(format!("cannot set up the default agent ({e})"))),
    }
}

/// Whether a turn of the conversation waits for an approval (from before a restart).
pub async fn pending_approval(backend: &dyn AgentBackend, conversation_id: &str) -> Result<bool, AgentError> {
    let approvals = backend.approvals().await?;
    Ok(approvals.iter().any(|a| a.conversation_id == conversation_id && a.state == ApprovalState::Pending))
}

/// Serves one remote terminal session until the command's connection closes;
/// `via` says who is on the other end (for the audit of its decisions).
pub async fn serve<R, W>(backend: Arc<dyn AgentBackend>, mut session: Session, via: String, input: R, mut output: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opened = match backend.agent(session.agent_id()).await {
        Ok(details) => ConsoleEvent::Opened {
            agent_id: details.agent.id.clone(),
            agent_name: details.agent.name,
            conversation_id: session.conversation_id().to_string(),
            pending_approval: pending_approval(&*backend, session.conversation_id()).await.unwrap_or(false),
        },
        Err(e) => ConsoleEvent::Failed { error: e.to_string(), ends_turn: true },
    };
    if write(&mut output, &opened).await.is_err() {
        return;
    }
    let mut lines = BufReader::new(input);
    let mut running = false;
    // Only the requests this session showed may be decided through it.
    let mut shown: HashSet<String> = HashSet::new();
    loop {
        let event = tokio::select! {
            message = session.next(), if running => match message {
                Some(message) => {
                    running = !matches!(message, SdkMessage::Result(_));
                    if let SdkMessage::ApprovalRequest { approval_id, .. } = &message {
                        shown.insert(approval_id.clone());
                    }
                    Some(ConsoleEvent::Message { message })
                }
                None => {
                    running = false;
                    Some(ConsoleEvent::Failed { error: "the turn ended without a result".into(), ends_turn: true })
                }
            },
            line = capped_line(&mut lines) => {
                let Ok(Some(line)) = line else { break };
                match serde_json::from_str::<ConsoleCommand>(&line) {
                    Ok(ConsoleCommand::Send { text }) => start(session.send(text), &mut running),
                    Ok(ConsoleCommand::Resume) => start(session.resume(), &mut running),
                    Ok(ConsoleCommand::Cancel) => {
                        session.canceller().cancel();
                        None
                    }
                    Ok(ConsoleCommand::Decide { approval_id, .. }) if !shown.contains(&approval_id) => {
                        Some(ConsoleEvent::Failed {
                            error: format!("{approval_id} was not asked in this session"),
                            ends_turn: false,
                        })
                    }
                    Ok(ConsoleCommand::Decide { approval_id, choice, reason }) => {
                        let decider = Decider::Operator { via: via.clone() };
                        match backend.decide_approval(&approval_id, &decider, choice, reason).await {
                            Ok(_) | Err(crate::policy::approvals::DecideError::NotPending) => None,
                            Err(e) => Some(ConsoleEvent::Failed { error: e.to_string(), ends_turn: false }),
                        }
                    }
                    Err(e) => Some(ConsoleEvent::Failed { error: format!("not a console command ({e})"), ends_turn: false }),
                }
            }
        };
        if let Some(event) = event {
            if write(&mut output, &event).await.is_err() {
                break;
            }
        }
    }
    // The command is gone: its turn stops at the next safe point.
    session.canceller().cancel();
}

/// A command line is small; one longer than this ends the session.
const MAX_COMMAND: u64 = 1024 * 1024;

/// The next line, or `None` at the end of the input or after an oversized line.
async fn capped_line<R: AsyncRead + Unpin>(input: &mut BufReader<R>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let read = input.take(MAX_COMMAND).read_until(b'\n', &mut buf).await?;
    if read == 0 || (buf.last() != Some(&b'\n') && read as u64 == MAX_COMMAND) {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn start(started: Result<(), AgentError>, running: &mut bool) -> Option<ConsoleEvent> {
    match started {
        Ok(()) => {
            *running = true;
            None
        }
        Err(e) => Some(ConsoleEvent::Failed { error: e.to_string(), ends_turn: true }),
    }
}

async fn write<W: AsyncWrite + Unpin>(output: &mut W, event: &ConsoleEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    line.push('\n');
    output.write_all(line.as_bytes()).await?;
    output.flush().await
}
