//! Errors of the agent surface. Their messages are written for a person.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("there is no {kind} {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("this session already has a turn in progress; read its stream to the end first")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}
