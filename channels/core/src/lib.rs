//! Channel-neutral pieces shared by the adapters: the `Channel` trait, `ChatKey`,
//! inbound and outbound messages, approval prompts, and Markdown rendering and
//! splitting to each platform's limits.

pub mod channel;
pub mod chat;
pub mod markdown;
pub mod split;

pub use channel::{Capabilities, Channel, ChannelError, InboundSink};
pub use chat::{
    ApprovalPrompt, ChatKey, ChatKind, Click, Inbound, InboundEvent, InboundKind, Outbound, Sender, SentRef,
};
