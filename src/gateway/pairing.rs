//! Pairing: an unknown person in a direct chat gets a short code, and an admin
//! approves it (in a chat, or from the command line); from then on that person
//! is known to the channel. Codes live an hour; a channel has few pending at once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::journal::{decode, encode};
use crate::store::{blocking, now_ms, Store, StoreResult};

const PAIRING: &str = "pairing";
const PAIRED: &str = "paired";
/// No look-alikes: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
const CODE_TTL_MS: u64 = 3600 * 1000;
const MAX_PENDING_PER_CHANNEL: usize = 3;

/// A code waiting for an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub code: String,
    pub channel: String,
    /// The channel-scoped sender id.
    pub user: String,
    pub name: String,
    pub created_at: u64,
}

/// The stored pairing requests and paired people.
#[derive(Clone)]
pub struct Pairing {
    store: Arc<dyn Store>,
}

impl Pairing {
    pub fn new(store: Arc<dyn Store>) -> Pairing {
        Pairing { store }
    }

    pub async fn is_paired(&self, sender: &str) -> StoreResult<bool> {
        let sender = sender.to_string();
        blocking(&self.store, move |s| Ok(s.kv_get(PAIRED, &sender)?.is_some())).await
    }

    /// The sender's pending code, or a new one; `None` when the channel already has
    /// the most pending requests allowed.
    pub async fn request_code(&self, channel: &str, user: &str, name: &str) -> StoreResult<Option<String>> {
        let (channel, user, name) = (channel.to_string(), user.to_string(), name.to_string());
        blocking(&self.store, move |s| {
            let now = now_ms();
            let mut live = Vec::new();
            for (key, bytes) in s.kv_scan(PAIRING, &format!("{channel}/"))? {
                match decode::<PairingRequest>(&bytes) {
                    Some(r) if now < r.created_at + CODE_TTL_MS => live.push(r),
                    _ => s.kv_remove(PAIRING, &key)?,
                }
            }
            if let Some(mine) = live.iter().find(|r| r.user == user) {
                return Ok(Some(mine.code.clone()));
            }
            if live.len() >= MAX_PENDING_PER_CHANNEL {
                return Ok(None);
            }
            let request = PairingRequest { code: new_code(), channel: channel.clone(), user, name, created_at: now };
            s.kv_put(PAIRING, &format!("{channel}/{}", request.code), &encode(&request))?;
            Ok(Some(request.code))
        })
        .await
    }

    pub async fn pending(&self, channel: &str) -> StoreResult<Vec<PairingRequest>> {
        let prefix = format!("{channel}/");
        blocking(&self.store, move |s| {
            let now = now_ms();
            Ok(s.kv_scan(PAIRING, &prefix)?
                .into_iter()
                .filter_map(|(_, v)| decode::<PairingRequest>(&v))
                .filter(|r| now < r.created_at + CODE_TTL_MS)
                .collect())
        })
        .await
    }

    /// Approves a pending code; returns who was paired.
    pub async fn approve(&self, channel: &str, code: &str, by: &str) -> StoreResult<Option<PairingRequest>> {
        let key = format!("{channel}/{}", code.trim().to_ascii_uppercase().replace('-', ""));
        let by = by.to_string();
        blocking(&self.store, move |s| {
            let Some(request) = s.kv_get(PAIRING, &key)?.and_then(|b| decode::<PairingRequest>(&b)) else {
                return Ok(None);
            };
            if now_ms() >= request.created_at + CODE_TTL_MS {
                s.kv_remove(PAIRING, &key)?;
                return Ok(None);
            }
            let paired = serde_json::json!({"approved_by": by, "at": now_ms(), "name": request.name});
            s.kv_put(PAIRED, &request.user, paired.to_string().as_bytes())?;
            s.kv_remove(PAIRING, &key)?;
            Ok(Some(request))
        })
        .await
    }
}

fn new_code() -> String {
    let random = uuid::Uuid::new_v4();
    random.as_bytes()[..CODE_LEN].iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[tokio::test]
    async fn pairing_codes_are_reused_limited_and_approvable() {
        let dir = tempfile::tempdir().unwrap();
        let pairing = Pairing::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        let a = pairing.request_code("fake", "fake:1", "A").await.unwrap().unwrap();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{a}");
        assert_eq!(pairing.request_code("fake", "fake:1", "A").await.unwrap().unwrap(), a, "same person, same code");
        pairing.request_code("fake", "fake:2", "B").await.unwrap().unwrap();
        pairing.request_code("fake", "fake:3", "C").await.unwrap().unwrap();
        assert_eq!(pairing.request_code("fake", "fake:4", "D").await.unwrap(), None, "at most three pending");
        assert_eq!(pairing.pending("fake").await.unwrap().len(), 3);
        assert!(pairing.request_code("other", "other:4", "D").await.unwrap().is_some(), "per channel");

        assert!(!pairing.is_paired("fake:1").await.unwrap());
        let paired = pairing.approve("fake", &a.to_lowercase(), "fake:99").await.unwrap().unwrap();
        assert_eq!(paired.user, "fake:1");
        assert!(pairing.is_paired("fake:1").await.unwrap());
        assert_eq!(pairing.approve("fake", &a, "fake:99").await.unwrap(), None, "a code works once");
        assert!(pairing.request_code("fake", "fake:4", "D").await.unwrap().is_some(), "room again");
    }
}
