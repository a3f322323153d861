//! Every store keeps the same promises: every test here runs against SQLite, sled and
//! a real PostgreSQL database (started for the test run), through the `Store` trait.
//! Then what only PostgreSQL has: one process per database, migrations applied once
//! by processes starting together, and a clear error when it cannot be reached.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use switchboard::store::postgres::{PgOptions, PgStore};
use switchboard::store::{
    text_content, AgentRecord, ConversationRecord, Entry, KvBatch, MemoryBlock, MessageBody, SledStore, SqliteStore,
    Store, StoreError,
};

/// A store of each kind, fresh, and how to open it again.
struct Backend {
    name: &'static str,
    reopen: Box<dyn Fn() -> Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
}

fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite_path = sqlite_dir.path().to_path_buf();
    let url = switchboard_fakes::postgres::database();
    vec![
        Backend {
            name: "sqlite",
            reopen: Box::new(move || Arc::new(SqliteStore::open(&sqlite_path, 8).unwrap()) as Arc<dyn Store>),
            _dir: Some(sqlite_dir),
        },
        Backend {
            name: "sled",
            reopen: Box::new(move || Arc::new(SledStore::open(&path).unwrap()) as Arc<dyn Store>),
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            reopen: Box::new(move || {
                Arc::new(
                    PgStore::open(&PgOptions { url: url.clone(), pool_size: 4, replicas: Default::default() }).unwrap(),
                ) as Arc<dyn Store>
            }),
            _dir: None,
        },
    ]
}

fn agent(id: &str, at: u64) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        name: "a".into(),
        model: None,
        system_prompt: switchboard::store::SystemPrompt::from_setting("default", ""),
        default_conversation: format!("conv-of-{id}"),
        created_at: at,
    }
}

fn conversation(id: &str, agent_id: &str) -> ConversationRecord {
    ConversationRecord { id: id.into(), agent_id: agent_id.into(), created_at: 1, updated_at: 1 }
}

fn user(text: &str, parent: Option<&Entry>) -> Entry {
    Entry::new(parent.map(|p| p.id().to_string()), MessageBody::User { content: text_content(text) })
}

#[test]
fn records_round_trip_and_survive_a_reopen() {
    for backend in backends() {
        let name = backend.name;
        let entries;
        {
            let s = (backend.reopen)();
            s.put_agent(&agent("agent-1", 2)).unwrap();
            s.put_agent(&agent("agent-0", 1)).unwrap();
            s.put_block("agent-1", &MemoryBlock::new("human", "likes tea", "about the human")).unwrap();
            s.put_block("agent-1", &MemoryBlock::new("persona", "terse", "")).unwrap();
            s.put_conversation(&conversation("conv-1", "agent-1")).unwrap();
            let first = user("hello", None);
            let second = user("again", Some(&first));
            let a = s.append_entry("conv-1", &first).unwrap();
            let b = s.append_entry("conv-1", &second).unwrap();
            assert!(b > a, "{name}: sequence numbers grow");
            entries = [first.id().to_string(), second.id().to_string()];
            s.put_meta("default_agent", "agent-1").unwrap();
        }
        let s = (backend.reopen)();
        let ids: Vec<String> = s.agents().unwrap().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["agent-0", "agent-1"], "{name}: oldest first");
        assert_eq!(s.agent("agent-1").unwrap().unwrap(), agent("agent-1", 2), "{name}");
        assert_eq!(s.agent("nobody").unwrap(), None, "{name}");
        let labels: Vec<String> = s.blocks("agent-1").unwrap().into_iter().map(|b| b.label).collect();
        assert_eq!(labels, ["human", "persona"], "{name}");
        assert!(s.blocks("agent-0").unwrap().is_empty(), "{name}");
        let stored: Vec<String> = s.entries("conv-1").unwrap().into_iter().map(|(_, e)| e.id().to_string()).collect();
        assert_eq!(stored, entries, "{name}: append order");
        assert!(s.has_entry("conv-1", &entries[1]).unwrap(), "{name}");
        assert!(!s.has_entry("conv-2", &entries[1]).unwrap(), "{name}: per conversation");
        assert!(s.conversation("conv-1").unwrap().unwrap().updated_at > 1, "{name}: the time follows the entries");
        assert_eq!(s.conversations(Some("agent-1")).unwrap().len(), 1, "{name}");
        assert!(s.conversations(Some("agent-0")).unwrap().is_empty(), "{name}");
        assert_eq!(s.meta("default_agent").unwrap().as_deref(), Some("agent-1"), "{name}");
        assert_eq!(s.meta("absent").unwrap(), None, "{name}");
    }
}

#[test]
fn a_long_transcript_reads_newest_first_across_pages() {
    for backend in backends() {
        let s = (backend.reopen)();
        let mut parent: Option<Entry> = None;
        for i in 0..150 {
            let entry = user(&format!("message {i}"), parent.as_ref());
            s.append_entry("conv-long", &entry).unwrap();
            parent = Some(entry);
        }
        s.append_entry("conv-other", &user("elsewhere", None)).unwrap();
        let newest: Vec<u64> = s.entries_newest_first("conv-long").map(|r| r.unwrap().0).collect();
        assert_eq!(newest.len(), 150, "{}", backend.name);
        assert!(newest.windows(2).all(|w| w[0] > w[1]), "{}: strictly newest first", backend.name);
        let oldest: Vec<u64> = s.entries("conv-long").unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(newest.iter().rev().copied().collect::<Vec<_>>(), oldest, "{}", backend.name);
        // Only the recent end is needed: taking three reads no more.
        assert_eq!(s.entries_newest_first("conv-long").take(3).count(), 3, "{}", backend.name);
    }
}

#[test]
fn deleting_an_agent_removes_what_belongs_to_it_only() {
    for backend in backends() {
        let name = backend.name;
        let s = (backend.reopen)();
        for id in ["agent-1", "agent-2"] {
            s.put_agent(&agent(id, 1)).unwrap();
            s.put_block(id, &MemoryBlock::new("persona", "p", "")).unwrap();
            s.put_conversation(&conversation(&format!("conv-{id}"), id)).unwrap();
            s.append_entry(&format!("conv-{id}"), &user("x", None)).unwrap();
        }
        assert!(s.delete_agent("agent-1").unwrap(), "{name}");
        assert!(!s.delete_agent("agent-1").unwrap(), "{name}: gone already");
        assert!(s.agent("agent-1").unwrap().is_none(), "{name}");
        assert!(s.blocks("agent-1").unwrap().is_empty(), "{name}");
        assert!(s.entries("conv-agent-1").unwrap().is_empty(), "{name}");
        assert_eq!(s.conversations(None).unwrap().len(), 1, "{name}");
        assert_eq!(s.entries("conv-agent-2").unwrap().len(), 1, "{name}");
    }
}

#[test]
fn key_spaces_are_independent_ordered_and_scanned_by_prefix() {
    for backend in backends() {
        let name = backend.name;
        let s = (backend.reopen)();
        for key in ["b", "a/2", "a/1", "a0", "a", "c"] {
            s.kv_put("journal", key, key.as_bytes()).unwrap();
        }
        s.kv_put("outbox", "a/1", b"other space").unwrap();
        s.kv_remove("journal", "c").unwrap();
        s.kv_remove("journal", "never there").unwrap();
        let keys = |prefix: &str| -> Vec<String> {
            s.kv_scan("journal", prefix).unwrap().into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(""), ["a", "a/1", "a/2", "a0", "b"], "{name}: byte order");
        assert_eq!(keys("a/"), ["a/1", "a/2"], "{name}");
        assert_eq!(keys("a"), ["a", "a/1", "a/2", "a0"], "{name}");
        assert!(keys("z").is_empty(), "{name}");
        assert_eq!(s.kv_get("outbox", "a/1").unwrap().as_deref(), Some(&b"other space"[..]), "{name}");
        assert_eq!(s.kv_get("journal", "zzz").unwrap(), None, "{name}");
        let (first, second) = (s.next_id().unwrap(), s.next_id().unwrap());
        assert!(first < second, "{name}: ids grow");
    }
}

#[test]
fn a_batch_applies_whole_and_only_when_its_key_is_absent() {
    for backend in backends() {
        let name = backend.name;
        let s = (backend.reopen)();
        s.kv_put("outbox", "old", b"x").unwrap();
        let mut batch = KvBatch::new();
        batch.put("journal", "e1", b"1".to_vec()).put("outbox", "new", b"2".to_vec()).remove("outbox", "old");
        s.kv_write(&batch).unwrap();
        assert_eq!(s.kv_get("outbox", "old").unwrap(), None, "{name}");
        assert_eq!(s.kv_get("outbox", "new").unwrap().as_deref(), Some(&b"2"[..]), "{name}");
        let mut again = KvBatch::new();
        again.put("journal", "e1", b"changed".to_vec()).put("order", "9", b"e1".to_vec());
        assert!(!s.kv_write_if_absent("journal", "e1", &again).unwrap(), "{name}: present");
        assert_eq!(s.kv_get("journal", "e1").unwrap().as_deref(), Some(&b"1"[..]), "{name}: untouched");
        assert!(s.kv_scan("order", "").unwrap().is_empty(), "{name}: none of the batch");
        // A batch that does not write its guard key leaves it absent.
        let mut other = KvBatch::new();
        other.put("order", "10", b"e2".to_vec());
        assert!(s.kv_write_if_absent("journal", "e2", &other).unwrap(), "{name}");
        assert_eq!(s.kv_get("journal", "e2").unwrap(), None, "{name}");
        assert_eq!(s.kv_scan("order", "").unwrap().len(), 1, "{name}");
    }
}

#[test]
fn of_writers_racing_to_store_the_same_event_exactly_one_wins() {
    for backend in backends() {
        let s = (backend.reopen)();
        for round in 0..5 {
            let key = format!("event-{round}");
            let barrier = Arc::new(Barrier::new(8));
            let racers: Vec<_> = (0..8)
                .map(|n| {
                    let (s, barrier, key) = (s.clone(), barrier.clone(), key.clone());
                    std::thread::spawn(move || {
                        let mut batch = KvBatch::new();
                        batch.put("journal", &key, format!("writer {n}").into_bytes());
                        batch.put("journal-order", &format!("{round}-{n}"), key.clone().into_bytes());
                        barrier.wait();
                        s.kv_write_if_absent("journal", &key, &batch).unwrap()
                    })
                })
                .collect();
            let won = racers.into_iter().map(|r| r.join().unwrap()).filter(|won| *won).count();
            assert_eq!(won, 1, "{}: round {round}", backend.name);
        }
        assert_eq!(s.kv_scan("journal-order", "").unwrap().len(), 5, "{}: one order entry each", backend.name);
    }
}

#[test]
fn approvals_grants_and_the_audit_log_keep_their_order() {
    use switchboard::policy::Tier;
    use switchboard::store::{ApprovalRecord, ApprovalState, AuditRecord, Grant};
    for backend in backends() {
        let name = backend.name;
        let s = (backend.reopen)();
        let approval = |id: &str, at: u64| ApprovalRecord {
            id: id.into(),
            agent_id: "agent-1".into(),
            conversation_id: "conv-1".into(),
            call_key: format!("{id}/0"),
            tool_call_id: "call-1".into(),
            tool: "Bash".into(),
            input: serde_json::json!({"command": "ls"}),
            summary: "ls".into(),
            complete: true,
            chat: Some("t:1".into()),
            requester: Some("t:7".into()),
            requester_tier: Some(Tier::User),
            in_group: false,
            created_at: at,
            expires_at: at + 1000,
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        s.put_approval(&approval("b", 2)).unwrap();
        s.put_approval(&approval("a", 1)).unwrap();
        let ids: Vec<String> = s.approvals().unwrap().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["a", "b"], "{name}: oldest first");
        s.remove_approval("a").unwrap();
        assert!(s.approval("a").unwrap().is_none(), "{name}");
        assert!(s.approval("b").unwrap().is_some(), "{name}");

        let grant = |chat: &str, id: &str| Grant {
            id: id.into(),
            chat: chat.into(),
            tool: "Bash".into(),
            subject: "ls".into(),
            tier: Tier::User,
            granted_by: "t:7".into(),
            granted_at: 1,
            expires_at: 2,
        };
        s.put_grant(&grant("t:1", "g2")).unwrap();
        s.put_grant(&grant("t:1", "g1")).unwrap();
        s.put_grant(&grant("t:2", "g3")).unwrap();
        let ids = |chat| s.grants(chat).unwrap().into_iter().map(|g| g.id).collect::<Vec<_>>();
        assert_eq!(ids(Some("t:1")), ["g1", "g2"], "{name}");
        assert_eq!(ids(None), ["g1", "g2", "g3"], "{name}");
        assert!(s.remove_grant("g1").unwrap(), "{name}");
        assert!(!s.remove_grant("g1").unwrap(), "{name}");
        assert_eq!(ids(Some("t:1")), ["g2"], "{name}");

        for n in 0..3 {
            let record = AuditRecord {
                at: n,
                approval_id: format!("r{n}"),
                agent_id: "agent-1".into(),
                conversation_id: "conv-1".into(),
                chat: None,
                tool: "Bash".into(),
                summary: "ls".into(),
                outcome: "denied".into(),
                actor: None,
                via: None,
                reason: None,
            };
            s.append_audit(&record).unwrap();
        }
        let audit: Vec<String> = s.audit().unwrap().into_iter().map(|r| r.approval_id).collect();
        assert_eq!(audit, ["r0", "r1", "r2"], "{name}");
    }
}

#[test]
fn sizes_name_every_part_that_holds_something() {
    for backend in backends() {
        let s = (backend.reopen)();
        s.kv_put("journal", "e", &[0u8; 100]).unwrap();
        s.put_agent(&agent("agent-1", 1)).unwrap();
        let sizes = s.sizes().unwrap();
        let journal = sizes.iter().find(|t| t.name == "kv:journal").expect("the journal's space is listed");
        assert_eq!((journal.records, journal.bytes), (1, 101), "{}", backend.name);
        assert!(sizes.iter().any(|t| t.name == "agents" && t.records == 1), "{}", backend.name);
        assert!(sizes.windows(2).all(|w| w[0].bytes >= w[1].bytes), "{}: largest first", backend.name);
    }
}

#[test]
fn one_process_uses_a_database_and_migrations_apply_once_when_started_together() {
    let url = switchboard_fakes::postgres::database();
    let barrier = Arc::new(Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::open(&PgOptions { url, pool_size: 2, replicas: Default::default() })
            })
        })
        .collect();
    let mut opened = Vec::new();
    let mut refused = 0;
    for opener in openers {
        match opener.join().unwrap() {
            Ok(store) => opened.push(store),
            Err(StoreError::DatabaseInUse { database }) => {
                assert!(database.contains("t_"), "names the database: {database}");
                refused += 1;
            }
            Err(e) => panic!("neither opened nor refused as in use: {e}"),
        }
    }
    assert_eq!((opened.len(), refused), (1, 3));
    assert_eq!(opened[0].schema_version().unwrap(), 2, "each migration applied once");
    // A database set up by the first version (without leases) is brought up to date.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "DROP TABLE leases; DROP FUNCTION switchboard_now_ms(); DELETE FROM schema_migrations WHERE version = 2",
            )
            .await
            .unwrap();
    });
    // Once the holder closes, the next process may use it.
    drop(opened);
    let again = PgStore::open(&PgOptions { url, pool_size: 2, replicas: Default::default() }).expect("free again");
    again.put_meta("k", "v").unwrap();
    assert_eq!(again.schema_version().unwrap(), 2, "upgraded from 1");
    let claim = again.lease_claim("turn:c", "r", std::time::Duration::from_secs(5)).unwrap();
    assert!(matches!(claim, switchboard::store::Claim::Held(_)), "leases work after the upgrade");
}

#[test]
fn an_unreachable_database_is_a_plain_error_without_the_password() {
    let url = switchboard_fakes::postgres::unreachable_url().replace("switchboard@", "switchboard:s3cret-pw@");
    let err = PgStore::open(&PgOptions { url, pool_size: 1, replicas: Default::default() })
        .err()
        .expect("nothing listens there");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{text}");
    assert!(text.contains("cannot reach the PostgreSQL database nothing on 127.0.0.1:"), "{text}");
    assert!(!text.contains("s3cret-pw"), "the password leaked: {text}");
}

#[test]
fn a_copy_holds_everything_in_order_and_gives_no_id_twice() {
    use switchboard::store::copy::copy_all;
    let [sqlite, sled, postgres]: [Backend; 3] = backends().try_into().ok().unwrap();
    let from = (sled.reopen)();
    from.put_agent(&agent("agent-1", 1)).unwrap();
    from.put_block("agent-1", &MemoryBlock::new("human", "likes tea", "")).unwrap();
    from.put_conversation(&conversation("conv-1", "agent-1")).unwrap();
    let mut parent: Option<Entry> = None;
    for i in 0..5 {
        let entry = user(&format!("m{i}"), parent.as_ref());
        from.append_entry("conv-1", &entry).unwrap();
        parent = Some(entry);
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = from.next_id().unwrap();
        from.kv_put("outbox", &format!("{id:020}"), format!("item {i}").as_bytes()).unwrap();
        ids.push(id);
    }
    from.put_meta("default_agent", "agent-1").unwrap();
    let to = (postgres.reopen)();
    let copied = copy_all(&*from, &*to).unwrap();
    assert_eq!((copied.agents, copied.blocks, copied.entries, copied.records, copied.meta), (1, 1, 5, 3, 1));
    assert!(to.next_id().unwrap() > *ids.iter().max().unwrap(), "a new id never meets a copied one");
    assert_eq!(to.meta("default_agent").unwrap().as_deref(), Some("agent-1"));
    // A second copy into the same store is refused rather than merged.
    let err = copy_all(&*from, &*to).expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");
    // And back, into a fresh SQLite store: the same again.
    let back = (sqlite.reopen)();
    copy_all(&*to, &*back).unwrap();
    assert!(back.next_id().unwrap() > *ids.iter().max().unwrap());
    assert_eq!(back.entries("conv-1").unwrap().len(), 5);
}

/// Ends the server session holding switchboard's lock on `url`'s database (as a
/// server restart or a dropped connection would); whether one did.
fn end_the_owners_session(url: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND database =
                     (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
}

/// Whether anyone holds switchboard's lock on `url`'s database.
fn held(url: &str) -> bool {
    let options = PgOptions { url: url.to_string(), pool_size: 1, replicas: Default::default() };
    PgStore::probe(&options).unwrap().in_use
}

#[test]
fn a_lost_lock_is_taken_again_or_every_call_fails_if_another_process_took_it() {
    let url = switchboard_fakes::postgres::database();
    let first = PgStore::open(&PgOptions { url: url.clone(), pool_size: 2, replicas: Default::default() }).unwrap();
    first.put_meta("k", "1").unwrap();
    assert!(end_the_owners_session(&url));
    // The next calls notice, and take the database again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !held(&url) {
        assert!(std::time::Instant::now() < deadline, "never taken again");
        first.put_meta("k", "2").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Lost again, and this time another process takes it first: the first one
    // stops writing instead of writing beside it.
    assert!(end_the_owners_session(&url));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        match PgStore::open(&PgOptions { url: url.clone(), pool_size: 2, replicas: Default::default() }) {
            Ok(store) => break store,
            Err(StoreError::DatabaseInUse { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(std::time::Instant::now() < deadline, "the lock was never released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    second.put_meta("k", "second").unwrap();
    // Its next call after it noticed the loss (at once, unless the server closed
    // the session a moment after letting go of its lock) is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        match first.put_meta("first", "still here?") {
            Err(e) => break e,
            Ok(()) => assert!(std::time::Instant::now() < deadline, "the first never noticed"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(matches!(refused, StoreError::DatabaseInUse { .. }), "{refused}");
    assert_eq!(second.meta("k").unwrap().as_deref(), Some("second"));
}

#[test]
fn a_lease_has_one_holder_and_a_holder_that_lost_it_cannot_commit() {
    use std::time::Duration;
    use switchboard::store::Claim;
    const SHORT: Duration = Duration::from_millis(500);
    const LONG: Duration = Duration::from_secs(60);
    for backend in backends() {
        let name = backend.name;
        let s = (backend.reopen)();
        let Claim::Held(a) = s.lease_claim("poller:telegram", "replica-a", SHORT).unwrap() else {
            panic!("{name}: a free lease is granted")
        };
        match s.lease_claim("poller:telegram", "replica-b", LONG).unwrap() {
            Claim::Taken { holder, .. } => assert_eq!(holder, "replica-a", "{name}"),
            Claim::Held(_) => panic!("{name}: two holders at once"),
        }
        // Claiming what one holds renews it, with the same fence.
        let Claim::Held(again) = s.lease_claim("poller:telegram", "replica-a", SHORT).unwrap() else {
            panic!("{name}: its own lease")
        };
        assert_eq!(again.fence, a.fence, "{name}");
        let a = s.lease_renew(&again, SHORT).unwrap().expect("still held");
        let mut write = KvBatch::new();
        write.put("outbox", "1", b"from a".to_vec());
        assert!(s.kv_write_fenced(&a, &write).unwrap(), "{name}: the holder commits");

        // It lapses: its holder may no longer commit, even before anyone else
        // claims it.
        std::thread::sleep(SHORT + Duration::from_millis(100));
        assert!(!s.kv_write_fenced(&a, &write).unwrap(), "{name}: a lapsed lease guards nothing");
        // Its holder claims it again: a new fence, and its old lease is no good.
        let Claim::Held(a2) = s.lease_claim("poller:telegram", "replica-a", SHORT).unwrap() else {
            panic!("{name}: a lapsed lease is granted to its old holder too")
        };
        assert!(a2.fence > a.fence, "{name}: a new holding, a new fence");
        assert!(!s.kv_write_fenced(&a, &write).unwrap(), "{name}: the old fence commits nothing");
        assert_eq!(s.lease_renew(&a, LONG).unwrap(), None, "{name}: nor renews");
        let a = a2;
        // It lapses again; another takes it, with a larger fence.
        std::thread::sleep(SHORT + Duration::from_millis(100));
        let Claim::Held(b) = s.lease_claim("poller:telegram", "replica-b", LONG).unwrap() else {
            panic!("{name}: a lapsed lease is granted")
        };
        assert!(b.fence > a.fence, "{name}: fences grow");
        assert_eq!(s.lease_renew(&a, LONG).unwrap(), None, "{name}: the old holder learns it lost it");
        let mut late = KvBatch::new();
        late.put("outbox", "1", b"from a, too late".to_vec());
        assert!(!s.kv_write_fenced(&a, &late).unwrap(), "{name}: the old holder cannot commit");
        assert_eq!(s.kv_get("outbox", "1").unwrap().as_deref(), Some(&b"from a"[..]), "{name}");
        assert!(s.kv_write_fenced(&b, &late).unwrap(), "{name}: the new holder can");

        // Released: claimable at once, and still with a larger fence.
        s.lease_release(&b).unwrap();
        let Claim::Held(c) = s.lease_claim("poller:telegram", "replica-c", LONG).unwrap() else {
            panic!("{name}: a released lease is granted at once")
        };
        assert!(c.fence > b.fence, "{name}");
        // Another name is another lease.
        assert!(matches!(s.lease_claim("turn:conv-1", "replica-a", LONG).unwrap(), Claim::Held(_)), "{name}");
    }
}

#[test]
fn of_processes_racing_for_a_free_lease_exactly_one_gets_it() {
    use switchboard::store::Claim;
    for backend in backends() {
        let s = (backend.reopen)();
        for round in 0..5 {
            let barrier = Arc::new(Barrier::new(6));
            let racers: Vec<_> = (0..6)
                .map(|n| {
                    let (s, barrier) = (s.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let ttl = std::time::Duration::from_secs(60);
                        s.lease_claim(&format!("turn:{round}"), &format!("replica-{n}"), ttl).unwrap()
                    })
                })
                .collect();
            let held = racers.into_iter().map(|r| r.join().unwrap()).filter(|c| matches!(c, Claim::Held(_))).count();
            assert_eq!(held, 1, "{}: round {round}", backend.name);
        }
    }
}

/// Replicas share a database (a shared lock each), a process that is not a
/// replica is refused beside them (and the other way round), and an announcement
/// by one is heard by every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_database_and_hear_each_others_announcements() {
    let url = switchboard_fakes::postgres::database();
    let replicas = switchboard::config::ReplicaSettings { enabled: true, ..Default::default() };
    let open = |replicas| PgStore::open(&PgOptions { url: url.clone(), pool_size: 2, replicas });
    let one = open(replicas).expect("the first replica");
    let two = open(replicas).expect("a second replica beside it");
    let alone = open(Default::default()).err().expect("a process that is not a replica is refused");
    assert!(matches!(alone, StoreError::DatabaseInUse { .. }), "{alone}");

    let (mut heard_by_one, mut heard_by_two) = (one.announcements().unwrap(), two.announcements().unwrap());
    // Each listener counts once when it starts listening.
    for heard in [&mut heard_by_one, &mut heard_by_two] {
        tokio::time::timeout(Duration::from_secs(10), heard.wait_for(|n| *n >= 1)).await.unwrap().unwrap();
    }
    let before = *heard_by_two.borrow();
    tokio::task::spawn_blocking(move || one.announce()).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), heard_by_two.wait_for(|n| *n > before))
        .await
        .expect("the other replica heard it")
        .unwrap();

    drop(two);
    let alone = open(Default::default()).expect("free once the replicas are gone");
    let refused = open(replicas).err().expect("a replica is refused beside a process that is not one");
    assert!(matches!(refused, StoreError::DatabaseHeldAlone { .. }), "{refused}");
    drop(alone);
}
