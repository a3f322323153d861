//! Channel-neutral pieces shared by the gateway and the platform adapters: the
//! [`Channel`] contract, chat keys and inbound events, the command table's shape,
//! channel settings and their registration, a connection's health line and
//! whether it still receives, and
//! Markdown parsing and splitting to each platform's limits. Nothing here is
//! specific to one platform.

#![warn(missing_docs)]

pub mod channel;
pub mod chat;
pub mod commands;
pub mod health;
pub mod ingress;
pub mod markdown;
pub mod ordered;
pub mod settings;
pub mod split;

pub use channel::{
    plain_blocks, Capabilities, Channel, ChannelError, DeliverError, InboundSink, LengthUnit, PromptRendering,
    RecentChat,
};
pub use chat::{
    ApprovalPrompt, ChatKey, ChatKind, Click, Command, Inbound, InboundEvent, InboundKind, Interaction, SendOptions,
    Sender, SentRef, Visibility,
};
pub use commands::CommandSpec;
pub use health::HealthCell;
pub use ingress::Ingress;
pub use settings::{
    AccessSettings, Busy, BusySettings, ChannelDescriptor, ChannelSettings, CommonSettings, DmPolicy, GroupPolicy,
    SettingKey, SettingsReader,
};
