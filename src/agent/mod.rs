//! The agent SDK surface (modelled on the Letta Code SDK) and its backends.
//!
//! Callers work with [`AgentBackend`] and [`Session`]; the embedded runtime in
//! [`embedded`] is the default backend.

mod backend;
pub mod embedded;
mod error;
mod messages;
mod session;
pub mod transcript;

pub use backend::{
    prompt, AgentBackend, AgentDetails, CreateAgentOptions, ExternalTools, MessagePage, PageRequest, RecordedReply,
    SessionOptions,
};
pub use error::AgentError;
pub use messages::{ErrorKind, SdkMessage, StopReason, StreamDelta, TurnResult, Usage};
pub use session::{Session, TurnRequest, TurnRunner, UserInput};
