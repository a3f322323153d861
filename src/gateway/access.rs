//! Who may talk to the agent: DM policy (pairing, allowlist, open), admins, and which
//! groups the bot works in and how (mention, open, listen, disabled). Pairing gives an
//! unknown person a short code that an admin approves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_channel_core::{ChatKind, Inbound};

use super::journal::{decode, encode};
use crate::config::{DmPolicy, GroupPolicy, TelegramSettings};
use crate::store::{blocking, now_ms, Store, StoreResult};

const PAIRING: &str = "pairing";
const PAIRED: &str = "paired";
/// No look-alikes: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
const CODE_TTL_MS: u64 = 3600 * 1000;
const MAX_PENDING_PER_CHANNEL: usize = 3;

/// One channel's rules, with ids in their channel-scoped form (`telegram:42`).
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    pub channel: String,
    pub dm_policy: DmPolicy,
    pub allowed_users: Vec<String>,
    pub admins: Vec<String>,
    pub group_policy: GroupPolicy,
    pub allowed_groups: Vec<String>,
    pub groups: BTreeMap<String, GroupPolicy>,
}

impl ChannelAccess {
    pub fn telegram(t: &TelegramSettings) -> ChannelAccess {
        let scoped = |ids: &[String]| ids.iter().map(|id| format!("telegram:{}", id.trim())).collect();
        ChannelAccess {
            channel: "telegram".into(),
            dm_policy: t.dm_policy,
            allowed_users: scoped(&t.allowed_users),
            admins: scoped(&t.admins),
            group_policy: t.group_policy,
            allowed_groups: t.allowed_groups.clone(),
            groups: t.groups.clone(),
        }
    }

    pub fn is_admin(&self, sender: &str) -> bool {
        self.admins.iter().any(|a| a == sender)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Goes on to the agent (or a command).
    Answer,
    /// Stored in the conversation, not answered (`listen` groups).
    Listen,
    /// Dropped, with this reply to the sender if any. The text never reaches the agent.
    Refuse(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingRequest {
    pub code: String,
    pub channel: String,
    pub user: String,
    pub name: String,
    pub created_at: u64,
}

#[derive(Clone)]
pub struct Access {
    store: Arc<dyn Store>,
}

impl Access {
    pub fn new(store: Arc<dyn Store>) -> Access {
        Access { store }
    }

    pub async fn judge(&self, rules: &ChannelAccess, message: &Inbound) -> StoreResult<Verdict> {
        let sender = &message.sender.id;
        if message.sender.is_bot {
            return Ok(Verdict::Refuse(None));
        }
        match message.kind {
            ChatKind::Group => {
                let verdict = group_verdict(rules, message);
                // Only a group the operator listed trusts everyone in it; elsewhere a
                // person must be allowed as in a DM, or adding the bot to one's own
                // group would get around pairing.
                let listed = rules.allowed_groups.contains(&message.chat.chat);
                if verdict == Verdict::Refuse(None) || listed || self.known(rules, sender).await? {
                    Ok(verdict)
                } else {
                    Ok(Verdict::Refuse(None))
                }
            }
            ChatKind::Direct if self.known(rules, sender).await? => Ok(Verdict::Answer),
            ChatKind::Direct => match rules.dm_policy {
                DmPolicy::Pairing => Ok(Verdict::Refuse(Some(self.pairing_reply(rules, message).await?))),
                _ => Ok(Verdict::Refuse(Some("Sorry, this assistant is private.".into()))),
            },
        }
    }

    /// Whether `sender` may talk under the DM policy without asking.
    async fn known(&self, rules: &ChannelAccess, sender: &str) -> StoreResult<bool> {
        Ok(rules.dm_policy == DmPolicy::Open
            || rules.is_admin(sender)
            || rules.allowed_users.iter().any(|u| u == sender)
            || self.is_paired(sender).await?)
    }

    pub async fn is_paired(&self, sender: &str) -> StoreResult<bool> {
        let sender = sender.to_string();
        blocking(&self.store, move |s| Ok(s.kv_get(PAIRED, &sender)?.is_some())).await
    }

    async fn pairing_reply(&self, rules: &ChannelAccess, message: &Inbound) -> StoreResult<String> {
        Ok(match self.request_code(&rules.channel, &message.sender.id, &message.sender.name).await? {
            Some(code) => format!(
                "Hi! I don't know you yet. Your pairing code is {code} (valid for one hour). Ask the owner to approve it: /pair {code} from an admin, or `switchboard pairing approve {} {code}`.",
                rules.channel
            ),
            None => "Hi! I don't know you yet, and too many pairing requests are waiting right now. Please try again later.".into(),
        })
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

fn group_verdict(rules: &ChannelAccess, message: &Inbound) -> Verdict {
    let chat = &message.chat.chat;
    if !rules.allowed_groups.is_empty() && !rules.allowed_groups.contains(chat) {
        return Verdict::Refuse(None);
    }
    match rules.groups.get(chat).copied().unwrap_or(rules.group_policy) {
        GroupPolicy::Disabled => Verdict::Refuse(None),
        GroupPolicy::Listen => Verdict::Listen,
        GroupPolicy::Open => Verdict::Answer,
        GroupPolicy::Mention if message.mentions_bot || message.reply_to_bot => Verdict::Answer,
        // Not addressed to the bot: kept out of the conversation entirely.
        GroupPolicy::Mention => Verdict::Refuse(None),
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
        let access = Access::new(Arc::new(SledStore::open(dir.path()).unwrap()));
        let a = access.request_code("telegram", "telegram:1", "A").await.unwrap().unwrap();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{a}");
        assert_eq!(
            access.request_code("telegram", "telegram:1", "A").await.unwrap().unwrap(),
            a,
            "same person, same code"
        );
        access.request_code("telegram", "telegram:2", "B").await.unwrap().unwrap();
        access.request_code("telegram", "telegram:3", "C").await.unwrap().unwrap();
        assert_eq!(access.request_code("telegram", "telegram:4", "D").await.unwrap(), None, "at most three pending");
        assert_eq!(access.pending("telegram").await.unwrap().len(), 3);

        assert!(!access.is_paired("telegram:1").await.unwrap());
        let paired = access.approve("telegram", &a.to_lowercase(), "telegram:99").await.unwrap().unwrap();
        assert_eq!(paired.user, "telegram:1");
        assert!(access.is_paired("telegram:1").await.unwrap());
        assert_eq!(access.approve("telegram", &a, "telegram:99").await.unwrap(), None, "a code works once");
        assert!(access.request_code("telegram", "telegram:4", "D").await.unwrap().is_some(), "room again");
    }
}
