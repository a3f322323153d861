//! `Session`: one live connection to a conversation, with `send` / `stream` / `close`.

use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AgentError, SdkMessage};

/// A user's message. With an `id`, sending it again (a replay after a crash) does not
/// add it twice: the turn continues from where the first attempt got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    pub text: String,
    pub id: Option<String>,
    /// The caller knows this is the message's first sending (its id was never
    /// given before, as when the gateway's journal stored its event just now):
    /// the turn records it without looking the id up. `false` when unsure.
    pub first: bool,
}

/// What a backend needs to run one turn.
pub struct TurnRequest {
    pub agent_id: String,
    pub conversation_id: String,
    pub session_id: String,
    /// The user's message; `None` resumes the conversation's unfinished turn (after a
    /// restart, once its pending approval is decided).
    pub input: Option<UserInput>,
    /// Messages that arrived before `input` and are answered with it (collected
    /// while an earlier turn ran): recorded in order before `input`, after the
    /// tool calls an earlier turn left unfinished are settled.
    pub earlier: Vec<UserInput>,
    pub events: mpsc::UnboundedSender<SdkMessage>,
    pub cancel: CancellationToken,
}

/// A backend's way of running turns; it must end every turn with `SdkMessage::Result`.
pub trait TurnRunner: Send + Sync {
    fn start_turn(&self, request: TurnRequest);
}

pub struct Session {
    agent_id: String,
    conversation_id: String,
    session_id: String,
    runner: Arc<dyn TurnRunner>,
    current: Option<mpsc::UnboundedReceiver<SdkMessage>>,
    cancel: CancellationToken,
}

impl Session {
    pub fn new(agent_id: String, conversation_id: String, runner: Arc<dyn TurnRunner>) -> Session {
        Session {
            agent_id,
            conversation_id,
            session_id: format!("session-{}", uuid::Uuid::new_v4()),
            runner,
            current: None,
            cancel: CancellationToken::new(),
        }
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Starts a turn with `text` as the user's message; read it with [`Session::stream`].
    pub fn send(&mut self, text: impl Into<String>) -> Result<(), AgentError> {
        self.start(Some(UserInput { text: text.into(), id: None, first: false }))
    }

    /// Like [`Session::send`], with the message's transcript id chosen by the caller.
    pub fn send_input(&mut self, input: UserInput) -> Result<(), AgentError> {
        self.start(Some(input))
    }

    /// Like [`Session::send_input`], answering `earlier` messages too: they are
    /// recorded, in order, before `input`, once tool calls an earlier turn left
    /// unfinished are settled (so those calls are not cut off by them).
    pub fn send_batch(&mut self, earlier: Vec<UserInput>, input: UserInput) -> Result<(), AgentError> {
        self.start_with(Some(input), earlier)
    }

    /// Continues the conversation's unfinished turn, if it has one: tool calls left
    /// waiting or cut off, then the model. Read it with [`Session::stream`].
    pub fn resume(&mut self) -> Result<(), AgentError> {
        self.start(None)
    }

    fn start(&mut self, input: Option<UserInput>) -> Result<(), AgentError> {
        self.start_with(input, Vec::new())
    }

    fn start_with(&mut self, input: Option<UserInput>, earlier: Vec<UserInput>) -> Result<(), AgentError> {
        if self.current.is_some() {
            return Err(AgentError::Busy);
        }
        if self.cancel.is_cancelled() {
            self.cancel = CancellationToken::new();
        }
        let (events, rx) = mpsc::unbounded_channel();
        self.current = Some(rx);
        self.runner.start_turn(TurnRequest {
            agent_id: self.agent_id.clone(),
            conversation_id: self.conversation_id.clone(),
            session_id: self.session_id.clone(),
            input,
            earlier,
            events,
            cancel: self.cancel.clone(),
        });
        Ok(())
    }

    /// The next message of the current turn; `None` once its `result` has been read.
    pub async fn next(&mut self) -> Option<SdkMessage> {
        let rx = self.current.as_mut()?;
        match rx.recv().await {
            Some(message) => {
                if matches!(message, SdkMessage::Result(_)) {
                    self.current = None;
                }
                Some(message)
            }
            None => {
                self.current = None;
                None
            }
        }
    }

    /// The current turn's messages, ending with its `result`.
    pub fn stream(&mut self) -> impl Stream<Item = SdkMessage> + '_ {
        futures::stream::unfold(self, |session| async move {
            let message = session.next().await?;
            Some((message, session))
        })
    }

    /// A handle that cancels the turn in progress (for Ctrl-C and `/cancel`).
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Ends the session, cancelling a turn in progress.
    pub fn close(self) {}
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
