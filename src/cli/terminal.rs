//! Where `chat` and `prompt` talk: in this process when it can open the store, else
//! in the switchboard that holds it (`serve`, the background SDK engine), through
//! the control socket. Either way the session is the console's and behaves alike.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchboard::agent::embedded::EmbeddedBackend;
use switchboard::agent::{AgentBackend, SdkMessage, Session};
use switchboard::config::{self, ConfigSource};
use switchboard::console::{self, ConsoleCommand, ConsoleEvent, ConsoleTarget};
use switchboard::control::{self, Connection, Request};
use switchboard::policy::approvals::{Choice, DecideError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::app::{not_found_hint, App};
use super::engine_host::Served;
use super::remote;
use super::turn_view::console_decider;

/// Where the session is, as the terminal shows it.
pub struct Opened {
    pub agent_id: String,
    pub agent_name: String,
    pub conversation_id: String,
    /// A turn from before a restart waits for an approval.
    pub pending_approval: bool,
}

pub enum Terminal {
    /// In this process, which serves the others meanwhile (`None` when it is not
    /// the process holding the store, as for `approvals allow`).
    Local {
        backend: Arc<EmbeddedBackend>,
        session: Session,
        served: Option<Served>,
    },
    Remote(Remote),
}

impl Terminal {
    /// Opens the session `target` names, here or in the process holding the store.
    pub async fn open(config_path: Option<&Path>, target: ConsoleTarget) -> anyhow::Result<(Terminal, Opened)> {
        let app = match App::open(config_path).await {
            Ok(app) => app,
            Err(e) if remote::is_locked(&e) => match Remote::open(config_path, &target).await {
                Ok(Some(opened)) => return Ok(opened),
                // Nothing answers (another `chat` holds the store): the error stands.
                Ok(None) => return Err(e),
                Err(refused) => return Err(refused),
            },
            Err(e) => return Err(e),
        };
        // Meanwhile, SDK sessions and other commands run here.
        let served = Served::try_start(&app);
        let session = console::open(&*app.backend, &target).await.map_err(not_found_hint)?;
        let details = app.backend.agent(session.agent_id()).await?;
        let opened = Opened {
            agent_id: details.agent.id,
            agent_name: details.agent.name,
            conversation_id: session.conversation_id().to_string(),
            pending_approval: console::pending_approval(&*app.backend, session.conversation_id()).await?,
        };
        Ok((Terminal::Local { backend: app.backend.clone(), session, served }, opened))
    }

    /// Ends the session; a process that served others waits for them first.
    pub async fn close(self) {
        if let Terminal::Local { served: Some(served), session, .. } = self {
            drop(session);
            served.finish(None).await;
        }
    }

    pub fn send(&mut self, text: String) -> anyhow::Result<()> {
        match self {
            Terminal::Local { session, .. } => Ok(session.send(text)?),
            Terminal::Remote(remote) => remote.command(ConsoleCommand::Send { text }),
        }
    }

    /// Continues the conversation's unfinished turn.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        match self {
            Terminal::Local { session, .. } => Ok(session.resume()?),
            Terminal::Remote(remote) => remote.command(ConsoleCommand::Resume),
        }
    }

    /// The next message of the current turn; `None` once it has ended.
    pub async fn next(&mut self) -> Option<SdkMessage> {
        match self {
            Terminal::Local { session, .. } => session.next().await,
            Terminal::Remote(remote) => remote.next().await,
        }
    }

    /// Cancels the current turn when cancelled.
    pub fn canceller(&self) -> CancellationToken {
        match self {
            Terminal::Local { session, .. } => session.canceller(),
            Terminal::Remote(remote) => remote.cancel.clone(),
        }
    }

    /// The operator's decision on an approval request of this turn.
    pub async fn decide(&mut self, approval_id: &str, choice: Choice, reason: Option<String>) {
        match self {
            Terminal::Local { backend, .. } => {
                match backend.decide_approval(approval_id, &console_decider(), choice, reason).await {
                    Ok(_) | Err(DecideError::NotPending) => {}
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            Terminal::Remote(remote) => {
                if let Err(e) = remote.decide(approval_id, choice, reason) {
                    eprintln!("error: {e}");
                }
            }
        }
    }
}

/// A session run by the process that holds the store.
pub struct Remote {
    events: Lines<BufReader<OwnedReadHalf>>,
    commands: mpsc::UnboundedSender<ConsoleCommand>,
    /// The current turn's; cancelling it (Ctrl-C) sends one cancel command.
    cancel: CancellationToken,
    cancel_sent: bool,
    /// A turn was started and its result not read yet.
    in_turn: bool,
    /// The holder ended the session (it stopped, or was killed).
    closed: bool,
}

/// How long the holder may take to open a session.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

impl Remote {
    /// `None` when no switchboard answers on the control socket.
    async fn open(config_path: Option<&Path>, target: &ConsoleTarget) -> anyhow::Result<Option<(Terminal, Opened)>> {
        let settings = config::load(&ConfigSource::from_process(config_path))?.settings;
        let request = Request::Console { target: target.clone() };
        let (connection, answer) = match control::open(&settings.data_dir, &request, OPEN_TIMEOUT).await {
            Ok(opened) => opened,
            // Nothing answers there (or the holder was just ending).
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::InvalidData) =>
            {
                return Ok(None)
            }
            Err(e) => anyhow::bail!("{e} (is it suspended?)"),
        };
        if answer.code != 0 {
            anyhow::bail!("{}", answer.stderr.trim().trim_start_matches("error: "));
        }
        let Connection { reader, writer: mut write } = connection;
        let mut events = reader.lines();
        let first = tokio::time::timeout(OPEN_TIMEOUT, events.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("the switchboard holding the data directory did not open the session"))??;
        let opened = match first.map(|l| serde_json::from_str::<ConsoleEvent>(&l)) {
            Some(Ok(ConsoleEvent::Opened { agent_id, agent_name, conversation_id, pending_approval })) => {
                Opened { agent_id, agent_name, conversation_id, pending_approval }
            }
            Some(Ok(ConsoleEvent::Failed { error, .. })) => anyhow::bail!("{error}"),
            _ => anyhow::bail!("the running switchboard did not open the session"),
        };
        let (commands, mut queue) = mpsc::unbounded_channel::<ConsoleCommand>();
        tokio::spawn(async move {
            while let Some(command) = queue.recv().await {
                let mut line = serde_json::to_string(&command).unwrap_or_default();
                line.push('\n');
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let remote = Remote {
            events,
            commands,
            cancel: CancellationToken::new(),
            cancel_sent: false,
            in_turn: false,
            closed: false,
        };
        Ok(Some((Terminal::Remote(remote), opened)))
    }

    fn command(&mut self, command: ConsoleCommand) -> anyhow::Result<()> {
        if self.closed {
            anyhow::bail!("the switchboard holding the data directory ended this session");
        }
        if matches!(command, ConsoleCommand::Send { .. } | ConsoleCommand::Resume) {
            if self.cancel.is_cancelled() {
                self.cancel = CancellationToken::new();
            }
            self.cancel_sent = false;
            self.in_turn = true;
        }
        self.commands
            .send(command)
            .map_err(|_| anyhow::anyhow!("the switchboard holding the data directory ended this session"))
    }

    /// Sends the turn's cancel once, when its token was cancelled.
    fn send_cancel(&mut self) {
        if self.cancel.is_cancelled() && !self.cancel_sent {
            self.cancel_sent = true;
            let _ = self.commands.send(ConsoleCommand::Cancel);
        }
    }

    /// A decision, unless the turn was cancelled (then the cancel goes first and
    /// settles the request).
    fn decide(&mut self, approval_id: &str, choice: Choice, reason: Option<String>) -> anyhow::Result<()> {
        if self.cancel.is_cancelled() {
            self.send_cancel();
            return Ok(());
        }
        self.command(ConsoleCommand::Decide { approval_id: approval_id.to_string(), choice, reason })
    }

    /// Like [`Session::next`]: the turn's messages, then `None` once its result was read.
    async fn next(&mut self) -> Option<SdkMessage> {
        while self.in_turn {
            let line = tokio::select! {
                line = self.events.next_line() => line,
                _ = self.cancel.cancelled(), if !self.cancel_sent => {
                    self.send_cancel();
                    continue;
                }
            };
            let Ok(Some(line)) = line else {
                eprintln!("error: the switchboard holding the data directory ended this session");
                self.closed = true;
                break;
            };
            match serde_json::from_str::<ConsoleEvent>(&line) {
                Ok(ConsoleEvent::Message { message }) => {
                    self.in_turn = !matches!(message, SdkMessage::Result(_));
                    return Some(message);
                }
                Ok(ConsoleEvent::Failed { error, ends_turn }) => {
                    eprintln!("error: {error}");
                    if ends_turn {
                        break;
                    }
                }
                Ok(ConsoleEvent::Opened { .. }) => {}
                Err(e) => {
                    eprintln!("error: the running switchboard sent something unexpected ({e})");
                    break;
                }
            }
        }
        self.in_turn = false;
        None
    }
}
