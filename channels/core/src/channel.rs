//! The `Channel` trait every platform adapter implements. Adapters turn platform
//! events into `InboundEvent`s and render what the gateway sends; they know nothing
//! of agents, stores or policies.

use async_trait::async_trait;

use crate::chat::{ApprovalPrompt, ChatKey, InboundEvent, SentRef};
use crate::markdown::Block;

#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Longest message, in the platform's own unit.
    pub max_message_len: usize,
    pub measure: crate::split::Measure,
    pub can_edit: bool,
    pub buttons: bool,
    pub threads: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The platform asked us to slow down.
    #[error("rate limited; retry after {0:?}")]
    RateLimited(std::time::Duration),
    /// Worth retrying (network, 5xx).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying the same request will not help (bad request, forbidden).
    #[error("rejected: {0}")]
    Rejected(String),
}

/// Where an adapter hands inbound events. `Ok` means the event is journaled: only
/// then may the adapter acknowledge it to the platform.
#[async_trait]
pub trait InboundSink: Send + Sync {
    async fn deliver(&self, event: InboundEvent) -> Result<(), String>;
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// One line of health for `/status` (for example a polling conflict).
    fn status(&self) -> String {
        "connected".into()
    }
    /// Starts receiving; events go to `sink` until `stop`.
    async fn start(&self, sink: std::sync::Arc<dyn InboundSink>) -> Result<(), ChannelError>;
    async fn stop(&self);
    /// Sends one part (it fits the limit). `reply_to` is a platform message id.
    async fn send(&self, chat: &ChatKey, part: &[Block], reply_to: Option<&str>) -> Result<SentRef, ChannelError>;
    async fn edit(&self, chat: &ChatKey, sent: &SentRef, part: &[Block]) -> Result<(), ChannelError>;
    async fn typing(&self, chat: &ChatKey) -> Result<(), ChannelError>;
    async fn show_approval(&self, chat: &ChatKey, prompt: &ApprovalPrompt) -> Result<SentRef, ChannelError>;
    /// Replaces the buttons with the outcome text.
    async fn resolve_approval(&self, chat: &ChatKey, sent: &SentRef, outcome: &str) -> Result<(), ChannelError>;
    /// Acknowledges a click, optionally with a notice (`alert` shows it as a popup).
    async fn answer_click(&self, callback_id: &str, notice: Option<&str>, alert: bool) -> Result<(), ChannelError>;
}
