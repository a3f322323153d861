//! Durable approvals: a tool call the policy sends to a person is stored before it is
//! shown, waits without holding a thread, and ends exactly once: allowed (once or
//! always here), denied, expired (fail-closed), or cancelled with its turn. Every
//! ending, and every refused attempt to decide, goes to the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::engine::grant_subject;
use super::summary::{describe, describe_whole};
use super::{Tier, ToolContext};
use crate::metrics::ApprovalEnd;
use crate::store::{
    blocking, now_ms, ApprovalRecord, ApprovalState, AuditRecord, Grant, Store, StoreError, StoreResult,
};

/// Key space: `conversation/call_key` -> approval id.
const CALL_INDEX: &str = "approval-by-call";
/// A waiting turn reads its request again at least this often: a decision made
/// by another process on the same store (a replica) wakes no waiter here.
const RECHECK: Duration = Duration::from_secs(1);

fn call_index_key(conversation_id: &str, call_key: &str) -> String {
    format!("{conversation_id}/{call_key}")
}

/// The three answers a person can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    AllowOnce,
    AlwaysAllowHere,
    Deny,
}

impl Choice {
    pub const ALL: [Choice; 3] = [Choice::AllowOnce, Choice::AlwaysAllowHere, Choice::Deny];

    pub fn label(self) -> &'static str {
        match self {
            Choice::AllowOnce => "Allow once",
            Choice::AlwaysAllowHere => "Always allow here",
            Choice::Deny => "Deny",
        }
    }

    /// A short stable code, for button data.
    pub fn code(self) -> &'static str {
        match self {
            Choice::AllowOnce => "o",
            Choice::AlwaysAllowHere => "a",
            Choice::Deny => "d",
        }
    }

    /// Accepts the code, the first word of the label, or the whole label.
    pub fn parse(text: &str) -> Option<Choice> {
        let t = text.trim().to_ascii_lowercase();
        Choice::ALL.into_iter().find(|c| {
            let label = c.label().to_ascii_lowercase();
            t == c.code() || t == label || (t.len() >= 4 && label.starts_with(&t))
        })
    }
}

/// Who is deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    /// Someone with access to the daemon itself (its command line or control
    /// socket), who may decide anything. Recorded as [`OPERATOR`], with `via`: the
    /// OS user and process it came from.
    Operator { via: String },
    /// A person in a chat, by channel-scoped id (`telegram:42`), with the tier
    /// the channel's access rules give them now.
    Person { id: String, tier: Tier },
}

/// How the operator appears in records and outcome lines.
pub const OPERATOR: &str = "console";

impl Decider {
    /// The id recorded with the decision.
    pub fn id(&self) -> &str {
        match self {
            Decider::Operator { .. } => OPERATOR,
            Decider::Person { id, .. } => id,
        }
    }
}

/// Whether `decider` may decide `approval`: the operator, admins and approvers
/// always; the person who asked only as a user and only where `users_approve_own`
/// allows it; guests never.
pub fn entitled(decider: &Decider, approval: &ApprovalRecord, approvers: &[String], users_approve_own: bool) -> bool {
    match decider {
        Decider::Operator { .. } => true,
        Decider::Person { tier: Tier::Admin, .. } => true,
        Decider::Person { id, .. } if approvers.contains(id) => true,
        Decider::Person { id, tier: Tier::User } => users_approve_own && approval.requester.as_deref() == Some(id),
        Decider::Person { tier: Tier::Guest, .. } => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("This request is no longer pending.")]
    NotPending,
    #[error("Only an approver can decide this request.")]
    NotEntitled,
    #[error("This request is too long to show in full here, so it cannot be allowed from a chat; the operator can decide it with `switchboard approvals`.")]
    NotShownInFull,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `decide` did.
#[derive(Debug)]
pub struct Decided {
    pub approval: ApprovalRecord,
    /// Whether a turn in this process was waiting for it. When not (the process that
    /// asked has restarted), the caller resumes the conversation's turn.
    pub waiter_woken: bool,
}

pub struct Approvals {
    store: Arc<dyn Store>,
    timeout: Duration,
    approvers: Vec<String>,
    /// Users may decide their own requests.
    users_approve_own: bool,
    /// How long an "always allow here" grant lasts.
    grant_for: Duration,
    /// Values that must never appear in summaries (configured secrets).
    secrets: Vec<String>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Serialises state changes so a decision and an expiry cannot both win.
    transitions: tokio::sync::Mutex<()>,
}

impl Approvals {
    pub fn new(
        store: Arc<dyn Store>,
        timeout: Duration,
        approvers: Vec<String>,
        users_approve_own: bool,
        grant_for: Duration,
        secrets: Vec<String>,
    ) -> Approvals {
        Approvals {
            store,
            timeout,
            approvers,
            users_approve_own,
            grant_for,
            secrets,
            waiters: Mutex::default(),
            transitions: tokio::sync::Mutex::new(()),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Stores a new pending approval for the call `call_key`.
    pub async fn create(
        &self,
        context: &ToolContext,
        call_key: &str,
        tool_call_id: &str,
        tool: &str,
        input: &Value,
    ) -> StoreResult<ApprovalRecord> {
        let now = now_ms();
        let description = describe(tool, input, &self.secrets);
        let record = ApprovalRecord {
            id: format!("apr-{}", uuid::Uuid::new_v4().simple()),
            agent_id: context.agent_id.clone(),
            conversation_id: context.conversation_id.clone(),
            call_key: call_key.to_string(),
            tool_call_id: tool_call_id.to_string(),
            tool: tool.to_string(),
            input: input.clone(),
            summary: description.text,
            complete: description.complete,
            chat: context.chat.clone(),
            requester: context.sender.clone(),
            requester_tier: Some(context.tier),
            in_group: context.in_group,
            created_at: now,
            expires_at: now + self.timeout.as_millis() as u64,
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        let stored = record.clone();
        let index_key = call_index_key(&record.conversation_id, call_key);
        blocking(&self.store, move |s| {
            s.put_approval(&stored)?;
            s.kv_put(CALL_INDEX, &index_key, stored.id.as_bytes())
        })
        .await?;
        tracing::info!(approval = %record.id, tool, "approval requested");
        Ok(record)
    }

    /// The approval recorded for the call `call_key`, if any.
    pub async fn for_call(&self, conversation_id: &str, call_key: &str) -> StoreResult<Option<ApprovalRecord>> {
        let key = call_index_key(conversation_id, call_key);
        crate::store::read(&self.store, move |s| match s.kv_get(CALL_INDEX, &key)? {
            Some(id) => s.approval(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        })
        .await
    }

    /// Marks a turn in this process as waiting for the approval. Call it before the
    /// request is shown, so a quick decision finds its waiter.
    pub fn watch(&self, id: &str) {
        self.waiter(id);
    }

    /// Undoes [`Approvals::watch`] when the turn will not wait after all.
    pub fn unwatch(&self, id: &str) {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Waits until the approval is decided, expires, or `cancel` fires, and returns
    /// its final record. Holds no thread while waiting.
    pub async fn wait(&self, approval: &ApprovalRecord, cancel: &CancellationToken) -> StoreResult<ApprovalRecord> {
        let notify = self.waiter(&approval.id);
        let result = loop {
            let current = self.load(&approval.id).await?;
            if current.state != ApprovalState::Pending {
                break current;
            }
            let left = Duration::from_millis(current.expires_at.saturating_sub(now_ms()));
            tokio::select! {
                _ = notify.notified() => continue,
                _ = tokio::time::sleep(left.min(RECHECK)) => {
                    if left > RECHECK {
                        continue;
                    }
                    break self.end(&approval.id, ApprovalState::Expired, None, None).await?;
                }
                _ = cancel.cancelled() => {
                    break self.end(&approval.id, ApprovalState::Cancelled, None, Some("the turn was cancelled".into())).await?;
                }
            }
        };
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&approval.id);
        Ok(result)
    }

    /// A person's decision. Refused (and audited) unless [`entitled`].
    pub async fn decide(
        &self,
        id: &str,
        decider: &Decider,
        choice: Choice,
        reason: Option<String>,
    ) -> Result<Decided, DecideError> {
        // Unknown ids (forged or stale) look exactly like decided ones to the decider.
        let current = match self.find(id).await? {
            Some(a) if a.state == ApprovalState::Pending => a,
            _ => return Err(DecideError::NotPending),
        };
        if !entitled(decider, &current, &self.approvers, self.users_approve_own) {
            self.audit(&current, "refused", Some(decider), None).await?;
            tracing::info!(approval = %id, "decision refused: not entitled");
            return Err(DecideError::NotEntitled);
        }
        // What a chat never saw whole, a chat cannot allow.
        if !current.complete && !matches!(decider, Decider::Operator { .. }) && choice != Choice::Deny {
            self.audit(&current, "refused", Some(decider), Some("not shown in full".into())).await?;
            return Err(DecideError::NotShownInFull);
        }
        if current.expires_at <= now_ms() {
            self.end(id, ApprovalState::Expired, None, None).await?;
            return Err(DecideError::NotPending);
        }
        let state = match choice {
            Choice::AllowOnce => ApprovalState::AllowedOnce,
            Choice::AlwaysAllowHere => ApprovalState::AllowedAlways,
            Choice::Deny => ApprovalState::Denied,
        };
        // The waiting turn is looked up before the decision is stored (once stored,
        // the turn may see it by itself and leave) and again after (a turn that
        // registered meanwhile may have read "pending" before the store): whichever
        // is found is woken, and `notify_one` keeps a permit for a turn between
        // reading and waiting, so no wake-up is lost. A turn registering after both
        // reads the decision itself; the caller's resume then finds nothing to do.
        let lookup = || self.waiters.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let before = lookup();
        let (approval, ended_here) = self.end_now(id, state, Some(decider), reason).await?;
        let waiter = before.or_else(lookup);
        let allows = matches!(state, ApprovalState::AllowedOnce | ApprovalState::AllowedAlways);
        if !ended_here && allows && approval.state == ApprovalState::Pending && !approval.complete {
            // Shown cut in a chat since the checks above.
            self.audit(&approval, "refused", Some(decider), Some("not shown in full".into())).await?;
            return Err(DecideError::NotShownInFull);
        }
        if !ended_here {
            // Decided, expired or cancelled a moment before (here or elsewhere).
            return Err(DecideError::NotPending);
        }
        if state == ApprovalState::AllowedAlways {
            self.grant(&approval, decider.id()).await?;
        }
        if let Some(n) = &waiter {
            n.notify_one();
        }
        Ok(Decided { approval, waiter_woken: waiter.is_some() })
    }

    /// Forgets decided requests older than `age_ms` (by when they were decided)
    /// and their call index entries; pending ones stay. Returns how many went.
    pub async fn prune(&self, age_ms: u64) -> StoreResult<usize> {
        let cutoff = now_ms().saturating_sub(age_ms);
        blocking(&self.store, move |s| {
            let mut removed = 0;
            for a in s.approvals()? {
                let ended = a.decided_at.unwrap_or(a.created_at);
                if a.state == ApprovalState::Pending || ended >= cutoff {
                    continue;
                }
                s.kv_remove(CALL_INDEX, &call_index_key(&a.conversation_id, &a.call_key))?;
                s.remove_approval(&a.id)?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
    }

    /// Expires every pending approval whose time ran out (for example while the
    /// process was down) and returns them.
    pub async fn expire_overdue(&self) -> StoreResult<Vec<ApprovalRecord>> {
        let now = now_ms();
        let overdue: Vec<ApprovalRecord> = crate::store::scan(&self.store, |s| s.approvals())
            .await?
            .into_iter()
            .filter(|a| a.state == ApprovalState::Pending && a.expires_at <= now)
            .collect();
        let mut expired = Vec::new();
        for a in overdue {
            expired.push(self.end(&a.id, ApprovalState::Expired, None, None).await?);
        }
        Ok(expired)
    }

    /// Cancels the pending approvals of a conversation (it was left with `/new` or
    /// stopped with `/cancel`), those asked by `requester` only when given, waking
    /// any turn waiting for one; returns them.
    pub async fn cancel_conversation(
        &self,
        conversation_id: &str,
        requester: Option<&str>,
        reason: &str,
    ) -> StoreResult<Vec<ApprovalRecord>> {
        let conversation = conversation_id.to_string();
        let open: Vec<ApprovalRecord> = crate::store::scan(&self.store, |s| s.approvals())
            .await?
            .into_iter()
            .filter(|a| a.state == ApprovalState::Pending && a.conversation_id == conversation)
            .filter(|a| requester.is_none_or(|r| a.requester.as_deref() == Some(r)))
            .collect();
        let mut cancelled = Vec::new();
        for a in open {
            let ended = self.end(&a.id, ApprovalState::Cancelled, None, Some(reason.to_string())).await?;
            if let Some(n) = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).get(&a.id) {
                n.notify_one();
            }
            if ended.state == ApprovalState::Cancelled {
                cancelled.push(ended);
            }
        }
        Ok(cancelled)
    }

    pub async fn pending(&self) -> StoreResult<Vec<ApprovalRecord>> {
        let all = crate::store::scan(&self.store, |s| s.approvals()).await?;
        Ok(all.into_iter().filter(|a| a.state == ApprovalState::Pending).collect())
    }

    /// Moves a pending approval to `state` (a no-op returning the record if it already
    /// ended) and audits the change.
    async fn end(
        &self,
        id: &str,
        state: ApprovalState,
        by: Option<&Decider>,
        reason: Option<String>,
    ) -> StoreResult<ApprovalRecord> {
        Ok(self.end_now(id, state, by, reason).await?.0)
    }

    /// Notes that a chat was shown the request cut (its channel could not show
    /// it whole): from then on only the operator may allow it. Under the same
    /// locks as a decision, so none slips between.
    pub async fn mark_shown_cut(&self, id: &str) -> StoreResult<()> {
        crate::store::exclusively(&self.store, &section(id), || async {
            let _guard = self.transitions.lock().await;
            let mut record = self.load(id).await?;
            if record.state != ApprovalState::Pending || !record.complete {
                return Ok(());
            }
            record.complete = false;
            blocking(&self.store, move |s| s.put_approval(&record)).await?;
            tracing::info!(approval = %id, "shown cut in a chat: only the operator may allow it");
            Ok(())
        })
        .await
    }

    /// As [`Approvals::end`]; also whether this call ended it (false: it had
    /// ended already). One change at a time, in this process and (replicas)
    /// across every process on the store.
    async fn end_now(
        &self,
        id: &str,
        state: ApprovalState,
        by: Option<&Decider>,
        reason: Option<String>,
    ) -> StoreResult<(ApprovalRecord, bool)> {
        let ended = crate::store::exclusively(&self.store, &section(id), || async {
            let _guard = self.transitions.lock().await;
            let mut record = self.load(id).await?;
            if record.state != ApprovalState::Pending {
                return Ok((record, false));
            }
            // Marked shown cut since the decider's checks: a chat cannot allow it.
            let allows = matches!(state, ApprovalState::AllowedOnce | ApprovalState::AllowedAlways);
            if allows && !record.complete && matches!(by, Some(Decider::Person { .. })) {
                return Ok((record, false));
            }
            record.state = state;
            record.decided_by = by.map(|d| d.id().to_string());
            record.decided_at = Some(now_ms());
            record.reason = reason.clone();
            let stored = record.clone();
            blocking(&self.store, move |s| s.put_approval(&stored)).await?;
            Ok((record, true))
        })
        .await?;
        let (record, true) = ended else { return Ok(ended) };
        self.audit(&record, state.as_str(), by, reason).await?;
        tracing::info!(approval = %id, outcome = state.as_str(), "approval ended");
        let end = match state {
            ApprovalState::AllowedOnce | ApprovalState::AllowedAlways => ApprovalEnd::Allowed,
            ApprovalState::Denied => ApprovalEnd::Denied,
            ApprovalState::Expired => ApprovalEnd::Expired,
            ApprovalState::Cancelled | ApprovalState::Pending => ApprovalEnd::Cancelled,
        };
        let waited = Duration::from_millis(now_ms().saturating_sub(record.created_at));
        crate::metrics::global().approval_ended(end, waited);
        Ok((record, true))
    }

    /// "Always allow here": what was shown, in this chat, for the asker's tier
    /// and above, until the grant expires.
    async fn grant(&self, approval: &ApprovalRecord, by: &str) -> StoreResult<()> {
        let Some(chat) = approval.chat.clone() else { return Ok(()) };
        let now = now_ms();
        let grant = Grant {
            id: format!("grt-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            chat,
            tool: approval.tool.clone(),
            subject: grant_subject(&approval.tool, &approval.input),
            // A record from before tiers: the narrowest.
            tier: approval.requester_tier.unwrap_or(Tier::Admin),
            granted_by: by.to_string(),
            granted_at: now,
            expires_at: now + self.grant_for.as_millis() as u64,
        };
        blocking(&self.store, move |s| s.put_grant(&grant)).await
    }

    async fn audit(
        &self,
        a: &ApprovalRecord,
        outcome: &str,
        by: Option<&Decider>,
        reason: Option<String>,
    ) -> StoreResult<()> {
        let record = AuditRecord {
            at: now_ms(),
            approval_id: a.id.clone(),
            agent_id: a.agent_id.clone(),
            conversation_id: a.conversation_id.clone(),
            chat: a.chat.clone(),
            tool: a.tool.clone(),
            // The operator's record shows the whole call, however long.
            summary: describe_whole(&a.tool, &a.input, &self.secrets),
            outcome: outcome.to_string(),
            actor: by.map(|d| d.id().to_string()),
            via: match by {
                Some(Decider::Operator { via }) => Some(via.clone()),
                _ => None,
            },
            reason,
        };
        blocking(&self.store, move |s| s.append_audit(&record)).await
    }

    pub async fn find(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        let owned = id.to_string();
        crate::store::read(&self.store, move |s| s.approval(&owned)).await
    }

    /// An approval that must exist (we created it).
    async fn load(&self, id: &str) -> StoreResult<ApprovalRecord> {
        self.find(id).await?.ok_or_else(|| StoreError::Decode { what: "approval", detail: format!("no approval {id}") })
    }

    fn waiter(&self, id: &str) -> Arc<Notify> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_string()).or_default().clone()
    }
}

/// The lock section of a request's changes, across processes (one of a few, so
/// that the lease rows stay few); within one, [`Approvals`]' own lock follows.
fn section(id: &str) -> String {
    format!("approval:{}", id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into())) % 64)
}

/// The question shown with the three choices, the same on every channel.
pub fn request_text(summary: &str) -> String {
    format!("Allow {summary}?")
}

/// What replaces the choices once the request has ended.
pub fn outcome_text(outcome: ApprovalState, decided_by: Option<&str>) -> String {
    let by = decided_by.map(|d| format!(" by {d}")).unwrap_or_default();
    match outcome {
        ApprovalState::AllowedOnce => format!("Allowed once{by}."),
        ApprovalState::AllowedAlways => format!("Always allowed here{by}."),
        ApprovalState::Denied => format!("Denied{by}."),
        ApprovalState::Expired => "Expired: nobody answered in time, so it did not run.".into(),
        ApprovalState::Cancelled => "Cancelled with the turn; it did not run.".into(),
        ApprovalState::Pending => "Waiting for a decision.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: ApprovalState, decided_at: Option<u64>) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            agent_id: "a".into(),
            conversation_id: "c".into(),
            call_key: format!("k-{id}"),
            tool_call_id: "t".into(),
            tool: "Bash".into(),
            input: Value::Null,
            summary: "Bash: id".into(),
            complete: true,
            chat: Some("fake:g".into()),
            requester: Some("fake:9".into()),
            requester_tier: Some(Tier::User),
            in_group: true,
            created_at: 0,
            expires_at: 1,
            state,
            decided_by: None,
            decided_at,
            reason: None,
        }
    }

    #[tokio::test]
    async fn decided_requests_past_their_retention_are_forgotten_with_their_index_pending_ones_never() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let store = backend.store.clone();
            let approvals = Approvals::new(
                store.clone(),
                Duration::from_secs(60),
                Vec::new(),
                false,
                Duration::from_secs(60),
                Vec::new(),
            );
            let now = now_ms();
            let old = now - 40 * 24 * 3600 * 1000;
            for a in [
                record("apr-old", ApprovalState::Denied, Some(old)),
                record("apr-new", ApprovalState::AllowedOnce, Some(now)),
                record("apr-waiting", ApprovalState::Pending, None),
            ] {
                store.put_approval(&a).unwrap();
                store.kv_put(CALL_INDEX, &call_index_key(&a.conversation_id, &a.call_key), a.id.as_bytes()).unwrap();
            }
            assert_eq!(approvals.prune(30 * 24 * 3600 * 1000).await.unwrap(), 1);
            let left: Vec<String> = store.approvals().unwrap().into_iter().map(|a| a.id).collect();
            assert_eq!(left.len(), 2);
            assert!(!left.contains(&"apr-old".to_string()));
            assert!(approvals.for_call("c", "k-apr-old").await.unwrap().is_none());
            assert_eq!(store.kv_scan(CALL_INDEX, "").unwrap().len(), 2, "its index entry went too");
            assert!(approvals.for_call("c", "k-apr-waiting").await.unwrap().is_some());
        }
    }

    /// A replica's waiting turn sees a decision another replica made on the same
    /// store (no waiter there to wake), within a recheck.
    #[tokio::test]
    async fn a_decision_made_by_another_process_reaches_the_waiting_turn() {
        for backend in crate::store::test_backends() {
            eprintln!("on {}", backend.name);
            let open = || {
                Approvals::new(
                    backend.store.clone(),
                    Duration::from_secs(60),
                    Vec::new(),
                    false,
                    Duration::from_secs(60),
                    Vec::new(),
                )
            };
            let (waiting_here, deciding_there) = (Arc::new(open()), open());
            let context = ToolContext { conversation_id: "c".into(), ..ToolContext::default() };
            let input = serde_json::json!({"command": "ls"});
            let request = waiting_here.create(&context, "k", "call-1", "Bash", &input).await.unwrap();
            waiting_here.watch(&request.id);
            let waiter = waiting_here.clone();
            let asked = request.clone();
            let waiting = tokio::spawn(async move { waiter.wait(&asked, &CancellationToken::new()).await });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!waiting.is_finished());
            let operator = Decider::Operator { via: "test".into() };
            let decided = deciding_there.decide(&request.id, &operator, Choice::AllowOnce, None).await.unwrap();
            assert!(!decided.waiter_woken, "nobody waits in the deciding process");
            let seen = tokio::time::timeout(RECHECK * 3, waiting).await;
            let seen = seen.expect("the waiting turn read the request again").unwrap().unwrap();
            assert_eq!(seen.state, ApprovalState::AllowedOnce, "and found it decided, well before it expired");
        }
    }

    /// Two replicas (two stores on one database) deciding one request at the
    /// same moment, opposite ways: one decision counts, the other is told the
    /// request is no longer pending, and the stored outcome is the winner's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_ends_once_across_replicas() {
        let url = switchboard_fakes::postgres::database();
        let replicas = crate::config::ReplicaSettings { enabled: true, ..Default::default() };
        let open = || -> Arc<dyn Store> {
            let options = crate::store::postgres::PgOptions { url: url.clone(), pool_size: 4, replicas };
            Arc::new(crate::store::postgres::PgStore::open(&options).unwrap())
        };
        let replica = |store: Arc<dyn Store>| {
            Arc::new(Approvals::new(
                store,
                Duration::from_secs(60),
                Vec::new(),
                false,
                Duration::from_secs(60),
                Vec::new(),
            ))
        };
        let (one, two) = (replica(open()), replica(open()));
        let operator = Decider::Operator { via: "test".into() };
        for round in 0..5 {
            let context = ToolContext { conversation_id: format!("c{round}"), ..ToolContext::default() };
            let input = serde_json::json!({"command": "ls"});
            let request = one.create(&context, "k", "call", "Bash", &input).await.unwrap();
            let (a, b) = (one.clone(), two.clone());
            let (id_a, id_b, op_a, op_b) = (request.id.clone(), request.id.clone(), operator.clone(), operator.clone());
            let allow = tokio::spawn(async move { a.decide(&id_a, &op_a, Choice::AllowOnce, None).await });
            let deny = tokio::spawn(async move { b.decide(&id_b, &op_b, Choice::Deny, None).await });
            let (allow, deny) = (allow.await.unwrap(), deny.await.unwrap());
            let stored = one.load(&request.id).await.unwrap();
            match (&allow, &deny) {
                (Ok(won), Err(DecideError::NotPending)) | (Err(DecideError::NotPending), Ok(won)) => {
                    assert_eq!(stored.state, won.approval.state, "round {round}: the winner's outcome is stored");
                }
                other => panic!("round {round}: exactly one decision must count: {other:?}"),
            }
        }
    }

    #[test]
    fn only_approvers_decide_unless_users_may_decide_their_own_and_guests_never() {
        let approval = record("apr-1", ApprovalState::Pending, None);
        let person = |id: &str, tier| Decider::Person { id: id.into(), tier };
        let approvers = ["fake:5".to_string()];
        for own in [false, true] {
            assert!(entitled(&Decider::Operator { via: "test".into() }, &approval, &approvers, own));
            assert!(entitled(&person("fake:1", Tier::Admin), &approval, &approvers, own), "an admin");
            assert!(entitled(&person("fake:5", Tier::User), &approval, &approvers, own), "an approver");
            assert!(!entitled(&person("fake:2", Tier::User), &approval, &approvers, own), "another user");
            assert!(!entitled(&person("fake:9", Tier::Guest), &approval, &approvers, own), "a guest, even their own");
        }
        assert!(!entitled(&person("fake:9", Tier::User), &approval, &approvers, false), "their own, not allowed");
        assert!(entitled(&person("fake:9", Tier::User), &approval, &approvers, true), "their own, allowed");
    }

    #[test]
    fn choices_parse_from_codes_and_labels() {
        assert_eq!(Choice::parse("o"), Some(Choice::AllowOnce));
        assert_eq!(Choice::parse(" A "), Some(Choice::AlwaysAllowHere));
        assert_eq!(Choice::parse("deny"), Some(Choice::Deny));
        assert_eq!(Choice::parse("always"), Some(Choice::AlwaysAllowHere));
        assert_eq!(Choice::parse("x"), None);
        assert_eq!(Choice::parse(""), None);
        assert_eq!(outcome_text(ApprovalState::AllowedOnce, Some("ada")), "Allowed once by ada.");
        assert!(outcome_text(ApprovalState::Expired, None).contains("did not run"));
        let wire: Choice = serde_json::from_str("\"always_allow_here\"").unwrap();
        assert_eq!(wire, Choice::AlwaysAllowHere);
        assert!(serde_json::from_str::<Choice>("\"alwyas\"").is_err(), "an unknown choice is an error, never a deny");
    }
}
