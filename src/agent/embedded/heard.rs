//! Which conversations a guest's words reached (a group's, a guest's direct
//! chat, one chats share), or anyone's (a page `WebFetch` read there). There,
//! what the model reads may carry a guest's instructions whoever's turn it is
//! (a member's in the group, the operator's continuing the conversation, an
//! admin's whose search across conversations read it), so the policy asks
//! before a memory edit ([`crate::policy::ToolContext::guests_heard`]). The
//! gateway notes a guest's messages
//! ([`crate::agent::AgentBackend::note_guest_words`]), and a turn notes the tool
//! results that bring such words in; every session on the conversation, whoever
//! opens it, reads it. Durable, as the words stay in the transcript across restarts.
//! Words from before the version that notes them are not known.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::store::{blocking, Store, StoreResult};

const SPACE: &str = "guests-heard";

/// Conversations remembered in memory as heard (each is also stored); past
/// this many, the memory is emptied and the store answers again.
const REMEMBERED: usize = 10_000;

/// The record of conversations a guest spoke in (or a page was read in). Cheap
/// to clone.
#[derive(Clone)]
pub struct GuestsHeard {
    store: Arc<dyn Store>,
    known: Arc<Mutex<HashSet<String>>>,
}

impl GuestsHeard {
    pub fn new(store: Arc<dyn Store>) -> GuestsHeard {
        GuestsHeard { store, known: Arc::default() }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that a guest's (or a page's) words reach `conversation`, before they do.
    pub async fn note(&self, conversation: &str) -> StoreResult<()> {
        if self.known().contains(conversation) {
            return Ok(());
        }
        let key = conversation.to_string();
        blocking(&self.store, move |s| s.kv_put(SPACE, &key, b"1")).await?;
        self.remember(conversation);
        Ok(())
    }

    /// Whether a guest's words reached `conversation`; when the store cannot
    /// tell, yes (asking is the safe answer).
    pub async fn heard(&self, conversation: &str) -> bool {
        if self.known().contains(conversation) {
            return true;
        }
        let key = conversation.to_string();
        let heard = crate::store::read(&self.store, move |s| Ok(s.kv_get(SPACE, &key)?.is_some())).await;
        match heard {
            Ok(true) => {
                self.remember(conversation);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read whether a guest spoke in a conversation; assuming so");
                true
            }
        }
    }

    /// Whether a guest's words reached any of `conversations` (as [`Self::heard`]).
    pub async fn any_heard(&self, conversations: &[String]) -> bool {
        for conversation in conversations {
            if self.heard(conversation).await {
                return true;
            }
        }
        false
    }

    /// Whether this process knows `conversation` as noted in the store (noted
    /// here or read so), without asking the store.
    pub fn known_here(&self, conversation: &str) -> bool {
        self.known().contains(conversation)
    }

    fn remember(&self, conversation: &str) {
        let mut known = self.known();
        if known.len() >= REMEMBERED {
            known.clear();
        }
        known.insert(conversation.to_string());
    }
}
