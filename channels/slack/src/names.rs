//! People's display names from `users.info`, cached. A name is a label, never an
//! identity; when Slack does not answer quickly, the id stands in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use crate::api::Api;

/// A name lookup may not hold an envelope's acknowledgement for longer.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_KNOWN: usize = 50_000;

/// Cheap to clone; clones share the cache.
#[derive(Clone, Default)]
pub struct Names(Arc<Mutex<HashMap<String, String>>>);

impl Names {
    /// `user`'s display name (cached), else the id.
    pub async fn of(&self, api: &Api, user: &str) -> String {
        if let Some(name) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(user) {
            return name.clone();
        }
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, api.call("users.info", &json!({"user": user}))).await;
        let Ok(Ok(info)) = answer else { return user.to_string() };
        let profile = &info["user"]["profile"];
        let name = [&profile["display_name"], &profile["real_name"], &info["user"]["name"]]
            .into_iter()
            .filter_map(|v| v.as_str())
            .find(|n| !n.trim().is_empty())
            .unwrap_or(user)
            .to_string();
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_KNOWN {
            cache.clear();
        }
        cache.insert(user.to_string(), name.clone());
        name
    }
}
