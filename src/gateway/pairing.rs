//! Pairing: an unknown person in a direct chat gets a short code, and an admin
//! approves it (in a chat, or from the command line); from then on that person
//! is a user of the channel, until an admin unpairs them. A code lives an hour and
//! asking again gives the same code; one person gets at most a few codes a day,
//! and a channel holds many pending codes, so a few throwaway accounts cannot
//! lock newcomers out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::journal::{decode, encode};
use crate::store::{blocking, now_ms, Store, StoreResult};

const PAIRING: &str = "pairing";
const PAIRED: &str = "paired";
/// No look-alikes: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
const REQUESTS: &str = "pairing-requests";
const CODE_TTL_MS: u64 = 3600 * 1000;
const MAX_PENDING_PER_CHANNEL: usize = 100;
/// Codes one person may be given in a day.
const MAX_CODES_PER_DAY: usize = 3;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// What asking for a code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRequest {
    Code(String),
    /// The channel has as many pending codes as it holds.
    ChannelFull,
    /// This person was given codes too often today.
    TooOften,
}

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
        crate::store::read(&self.store, move |s| Ok(s.kv_get(PAIRED, &sender)?.is_some())).await
    }

    /// The sender's pending code, or a new one when the limits allow.
    pub async fn request_code(&self, channel: &str, user: &str, name: &str) -> StoreResult<CodeRequest> {
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
                return Ok(CodeRequest::Code(mine.code.clone()));
            }
            let given_key = format!("{channel}/{user}");
            let mut given: Vec<u64> = s.kv_get(REQUESTS, &given_key)?.and_then(|b| decode(&b)).unwrap_or_default();
            given.retain(|at| now < at + DAY_MS);
            if given.len() >= MAX_CODES_PER_DAY {
                return Ok(CodeRequest::TooOften);
            }
            if live.len() >= MAX_PENDING_PER_CHANNEL {
                return Ok(CodeRequest::ChannelFull);
            }
            let request = PairingRequest { code: new_code(), channel: channel.clone(), user, name, created_at: now };
            given.push(now);
            s.kv_put(REQUESTS, &given_key, &encode(&given))?;
            s.kv_put(PAIRING, &format!("{channel}/{}", request.code), &encode(&request))?;
            Ok(CodeRequest::Code(request.code))
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

impl Pairing {
    /// Refuses a pending code; returns whose it was.
    pub async fn reject(&self, channel: &str, code: &str) -> StoreResult<Option<PairingRequest>> {
        let key = format!("{channel}/{}", code.trim().to_ascii_uppercase().replace('-', ""));
        blocking(&self.store, move |s| {
            let found = s.kv_get(PAIRING, &key)?.and_then(|b| decode::<PairingRequest>(&b));
            if found.is_some() {
                s.kv_remove(PAIRING, &key)?;
            }
            Ok(found)
        })
        .await
    }

    /// Unpairs a person (a channel-scoped id); whether they were paired.
    pub async fn revoke(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_string();
        blocking(&self.store, move |s| {
            let paired = s.kv_get(PAIRED, &user)?.is_some();
            if paired {
                s.kv_remove(PAIRED, &user)?;
            }
            Ok(paired)
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
        let code = |r: CodeRequest| match r {
            CodeRequest::Code(c) => c,
            other => panic!("no code: {other:?}"),
        };
        let a = code(pairing.request_code("fake", "fake:1", "A").await.unwrap());
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{a}");
        assert_eq!(code(pairing.request_code("fake", "fake:1", "A").await.unwrap()), a, "same person, same code");
        for n in 2..=MAX_PENDING_PER_CHANNEL {
            code(pairing.request_code("fake", &format!("fake:{n}"), "x").await.unwrap());
        }
        let full = pairing.request_code("fake", "fake:newcomer", "N").await.unwrap();
        assert_eq!(full, CodeRequest::ChannelFull, "a cap, but far above a few throwaway accounts");
        assert_eq!(pairing.pending("fake").await.unwrap().len(), MAX_PENDING_PER_CHANNEL);
        assert!(
            matches!(pairing.request_code("other", "other:4", "D").await.unwrap(), CodeRequest::Code(_)),
            "per channel"
        );

        assert!(!pairing.is_paired("fake:1").await.unwrap());
        let paired = pairing.approve("fake", &a.to_lowercase(), "fake:99").await.unwrap().unwrap();
        assert_eq!(paired.user, "fake:1");
        assert!(pairing.is_paired("fake:1").await.unwrap());
        assert_eq!(pairing.approve("fake", &a, "fake:99").await.unwrap(), None, "a code works once");
        assert!(matches!(pairing.request_code("fake", "fake:newcomer", "N").await.unwrap(), CodeRequest::Code(_)));
        assert!(pairing.revoke("fake:1").await.unwrap());
        assert!(!pairing.is_paired("fake:1").await.unwrap(), "unpaired");
        assert!(!pairing.revoke("fake:1").await.unwrap());
    }

    #[tokio::test]
    async fn one_person_gets_few_codes_a_day_and_a_code_can_be_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let pairing = Pairing::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        for _ in 0..MAX_CODES_PER_DAY {
            let CodeRequest::Code(c) = pairing.request_code("fake", "fake:5", "E").await.unwrap() else { panic!() };
            assert_eq!(pairing.reject("fake", &c).await.unwrap().unwrap().user, "fake:5");
        }
        assert_eq!(pairing.request_code("fake", "fake:5", "E").await.unwrap(), CodeRequest::TooOften);
        assert_eq!(pairing.reject("fake", "NOSUCHCO").await.unwrap(), None);
    }
}
