//! Display names of the people who decided approvals, for the prompt's outcome
//! line ("Allowed once by Ada"). Ids are the identity; names are only labels,
//! remembered from what a person last sent and forgotten in bulk when many pile up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_channel_core::Sender;

const MAX_REMEMBERED: usize = 10_000;

#[derive(Clone, Default)]
pub struct Names {
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl Names {
    fn map(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn remember(&self, sender: &Sender) {
        let mut names = self.map();
        if names.len() > MAX_REMEMBERED {
            names.clear();
        }
        names.insert(sender.id.clone(), sender.name.clone());
    }

    /// The name of `id` as people know it; for someone not seen since the start,
    /// their platform id (`user U012AB3CD` for `slack:U012AB3CD`).
    pub fn display(&self, id: &str) -> String {
        if let Some(name) = self.map().get(id) {
            return name.clone();
        }
        match id.split_once(':') {
            Some((_, raw)) => format!("user {raw}"),
            None => id.to_string(),
        }
    }
}
