//! The one place channels are registered: the configuration loader reads a
//! section for each, and `serve` starts each whose section turns it on. A new
//! channel crate is added here and nowhere else.

use switchboard_channel_core::ChannelDescriptor;

/// Every channel this build knows, in the order they start.
pub const REGISTERED: &[ChannelDescriptor] = &[
    switchboard_channel_telegram::DESCRIPTOR,
    switchboard_channel_discord::DESCRIPTOR,
    switchboard_channel_slack::DESCRIPTOR,
];
