//! The channels the gateway serves, fixed at start: each adapter with its access
//! rules and its pace (the least time between two streaming edits in one chat).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_channel_core::{BusySettings, Channel, CommonSettings};

use super::access::ChannelAccess;

/// A channel and its common settings, as the daemon hands them to the gateway.
pub struct ChannelEntry {
    pub channel: Arc<dyn Channel>,
    pub common: CommonSettings,
}

/// One served channel.
pub struct Served {
    pub channel: Arc<dyn Channel>,
    pub access: ChannelAccess,
    /// The configured edit interval, never below the platform's minimum.
    pub pace: Duration,
    /// How its busy conversations take more messages.
    pub busy: BusySettings,
}

/// Every served channel by name; cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    served: Arc<HashMap<String, Served>>,
    /// Names in the order they were given (start order, `/status` order).
    order: Arc<Vec<String>>,
}

impl Registry {
    /// `approvers` are the daemon's (channel-scoped ids): admins in every channel.
    pub fn new(entries: Vec<ChannelEntry>, approvers: &[String]) -> Registry {
        let mut served = HashMap::new();
        let mut order = Vec::new();
        for entry in entries {
            let name = entry.channel.name().to_string();
            let floor = entry.channel.capabilities().min_edit_interval;
            let pace = entry.common.edit_interval.map_or(floor, |configured| configured.max(floor));
            let access = ChannelAccess::new(&name, &entry.common.access, approvers);
            order.push(name.clone());
            served.insert(name, Served { channel: entry.channel, access, pace, busy: entry.common.busy });
        }
        Registry { served: Arc::new(served), order: Arc::new(order) }
    }

    pub fn get(&self, name: &str) -> Option<&Served> {
        self.served.get(name)
    }

    pub fn channel(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.get(name).map(|s| s.channel.clone())
    }

    /// Every served channel, in start order.
    pub fn all(&self) -> impl Iterator<Item = &Served> {
        self.order.iter().filter_map(|name| self.served.get(name))
    }
}
