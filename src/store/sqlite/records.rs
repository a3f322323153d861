//! [`Store`] on SQLite: each read one query, each write a few statements in the
//! open transaction (see the module above for when it is committed and flushed,
//! and [`super::Core::stage`] for why each write reads, decodes and encodes all it
//! needs before its first change).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::SqliteStore;
use crate::store::{
    lease, now_ms, AgentRecord, ApprovalRecord, AuditRecord, Claim, ConversationRecord, Entry, Grant, KvBatch, KvOp,
    Lease, MemoryBlock, Store, StoreError, StoreResult, TreeSize,
};

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode { what, detail: e.to_string() })
}

/// Room a row needs beside its values (its header, other columns' types).
const ROW_ROOM: usize = 1024;

/// Fails when a row of `bytes` (its values together) is more than SQLite takes
/// (`SQLITE_LIMIT_LENGTH`, a billion bytes unless lowered): asked before a
/// write's first change, so a too-large record fails that write alone, not
/// half-way (which would end the store's writes: see `Core::stage`).
fn fits(conn: &Connection, bytes: usize) -> StoreResult<()> {
    let most = conn.limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH).unwrap_or(1_000_000_000);
    let most = usize::try_from(most).unwrap_or(0);
    match bytes.saturating_add(ROW_ROOM) <= most {
        true => Ok(()),
        false => Err(StoreError::Backend(format!("a record of {bytes} bytes is more than the store takes ({most})"))),
    }
}

/// Milliseconds and ids are stored as SQLite's signed integers.
fn signed(n: u64) -> i64 {
    n as i64
}

/// Entries read per query when a transcript is read newest first: one literal
/// for [`PAGE`] and the `LIMIT` of [`NEWEST_FIRST`].
macro_rules! page {
    () => {
        64
    };
}
const PAGE: i64 = page!();
/// A page of a transcript, newest first. SQLite prepares a statement again on
/// each use when the plan may depend on a bound value: a `LIMIT ?`, or `col = ?`
/// before an `ORDER BY` of the index's next column. So the limit is written out,
/// and such equalities read `col = +?` (the same index search, a fixed plan).
const NEWEST_FIRST: &str =
    concat!("SELECT seq, body FROM entries WHERE conversation_id = +?1 AND seq < ?2 ORDER BY seq DESC LIMIT ", page!());

/// The lease `name` as stored (`None`: never held).
fn lease_in(conn: &Connection, name: &str) -> rusqlite::Result<Option<Lease>> {
    conn.prepare_cached("SELECT holder, fence, expires_at_ms FROM leases WHERE name = ?1")?
        .query_row([name], |row| {
            Ok(Lease {
                name: name.to_string(),
                holder: row.get(0)?,
                fence: row.get::<_, i64>(1)? as u64,
                expires_at_ms: row.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .optional()
}

/// Whether `lease` is still held with its fence.
fn held_in(conn: &Connection, lease: &Lease) -> rusqlite::Result<bool> {
    Ok(lease_in(conn, &lease.name)?.is_some_and(|stored| lease::still_held(&stored, lease, now_ms())))
}

fn seq_and_entry(row: &Row<'_>) -> rusqlite::Result<(i64, Vec<u8>)> {
    Ok((row.get(0)?, row.get(1)?))
}

impl SqliteStore {
    /// The first column of each row, decoded. A damaged file is named as such
    /// (a write that meets one ends the store's writes: see `Core::stage`).
    fn bodies<T: DeserializeOwned>(
        &self,
        conn: &Connection,
        what: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> StoreResult<Vec<T>> {
        let raw = conn
            .prepare_cached(sql)
            .and_then(|mut statement| {
                statement.query_map(params, |row| row.get::<_, Vec<u8>>(0))?.collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.backend(e))?;
        raw.iter().map(|bytes| decode(what, bytes)).collect()
    }

    /// A statement that changes rows, prepared once; how many. A damaged file
    /// is named as such, as in [`SqliteStore::bodies`].
    fn exec(&self, conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
        conn.prepare_cached(sql).and_then(|mut statement| statement.execute(params)).map_err(|e| self.backend(e))
    }

    /// One statement as a write of its own; how many rows it changed.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
        self.write(|tx| self.exec(tx, sql, params))
    }

    /// The first column of the row found, decoded.
    fn one<T: DeserializeOwned>(&self, what: &'static str, sql: &str, key: &str) -> StoreResult<Option<T>> {
        let found =
            self.read(|conn| conn.prepare_cached(sql)?.query_row([key], |row| row.get::<_, Vec<u8>>(0)).optional())?;
        found.map(|bytes| decode(what, &bytes)).transpose()
    }

    /// Every row's first column, decoded.
    fn all<T: DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> StoreResult<Vec<T>> {
        self.read(|conn| Ok(self.bodies(conn, what, sql, params)))?
    }

    /// Appends `entry`, while `lease` (when given) is still held.
    fn append_entry_if(&self, conversation_id: &str, entry: &Entry, lease: Option<&Lease>) -> StoreResult<Option<u64>> {
        let body = encode(entry)?;
        self.write(|tx| {
            if let Some(lease) = lease {
                if !held_in(tx, lease).map_err(|e| self.backend(e))? {
                    return Ok(None);
                }
            }
            fits(tx, conversation_id.len() + entry.id().len() + body.len())?;
            // The conversation's time moves in the same transaction, first: a
            // record that is not JSON fails this statement, and so this write
            // alone, before any change (one that is JSON but no object, such as
            // an array, is left as it is). Changed in place by SQLite (its JSON
            // functions read a blob as their own binary form, hence the casts),
            // not read, decoded and written back: one statement, not two.
            self.exec(
                tx,
                "UPDATE conversations SET body = CAST(json_set(CAST(body AS TEXT), '$.updated_at', ?2) AS BLOB)
                 WHERE id = ?1",
                params![conversation_id, signed(entry.msg.timestamp)],
            )?;
            let seq = tx.next_id();
            self.exec(
                tx,
                "INSERT INTO entries (conversation_id, seq, entry_id, body) VALUES (?1, ?2, ?3, ?4)",
                params![conversation_id, signed(seq), entry.id(), body],
            )?;
            Ok(Some(seq))
        })
    }

    /// Applies `batch` at once (one write), only when `guard` (space, key) holds
    /// nothing and only while `lease` is held (each if given); whether it applied.
    /// Waits for the flush either way: what was found may be another writer's,
    /// not yet durable, and the caller may take it as stored.
    fn apply(&self, batch: &KvBatch, guard: Option<(&str, &str)>, lease: Option<&Lease>) -> StoreResult<bool> {
        self.write(|tx| {
            if let Some(lease) = lease {
                if !held_in(tx, lease).map_err(|e| self.backend(e))? {
                    return Ok(false);
                }
            }
            if let Some((space, key)) = guard {
                let found = tx
                    .prepare_cached("SELECT 1 FROM kv WHERE space = ?1 AND key = ?2")
                    .and_then(|mut s| s.exists([space, key]))
                    .map_err(|e| self.backend(e))?;
                if found {
                    return Ok(false);
                }
            }
            // Every row (and every removed key, bound as a value too) is checked
            // before the first change.
            for op in batch.ops() {
                let bytes = match op {
                    KvOp::Put { space, key, value } => space.len() + key.len() + value.len(),
                    KvOp::Remove { space, key } => space.len() + key.len(),
                };
                fits(tx, bytes)?;
            }
            for op in batch.ops() {
                match op {
                    KvOp::Put { space, key, value } => self.exec(
                        tx,
                        "INSERT INTO kv (space, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                        params![space, key, value],
                    )?,
                    KvOp::Remove { space, key } => {
                        self.exec(tx, "DELETE FROM kv WHERE space = ?1 AND key = ?2", [space, key])?
                    }
                };
            }
            Ok(true)
        })
    }

    /// Runs `change` on the stored lease `name` at once (one write); what it
    /// answers. A lease it wrote is durable before its caller hears of it (an
    /// answer that wrote nothing waits for no flush).
    fn with_lease<T>(
        &self,
        name: &str,
        change: impl FnOnce(Option<Lease>, u64) -> (Option<Lease>, T),
    ) -> StoreResult<T> {
        let began = std::time::Instant::now();
        let (answer, wrote) = self.stage(|tx| {
            let current = lease_in(tx, name).map_err(|e| self.backend(e))?;
            let (write, answer) = change(current, now_ms());
            let wrote = write.is_some();
            if let Some(lease) = write {
                self.exec(
                    tx,
                    "INSERT INTO leases (name, holder, fence, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, fence = excluded.fence,
                         expires_at_ms = excluded.expires_at_ms",
                    params![name, lease.holder, signed(lease.fence), signed(lease.expires_at_ms)],
                )?;
            }
            Ok((answer, wrote))
        })?;
        if wrote {
            self.settle()?;
            crate::metrics::global().store_write(began.elapsed());
        }
        Ok(answer)
    }
}

impl Store for SqliteStore {
    fn put_agent(&self, agent: &AgentRecord) -> StoreResult<()> {
        let body = encode(agent)?;
        self.execute(
            "INSERT INTO agents (id, created_at, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, body = excluded.body",
            params![agent.id, signed(agent.created_at), body],
        )
        .map(drop)
    }

    fn agent(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        self.one("agent", "SELECT body FROM agents WHERE id = ?1", id)
    }

    fn agents(&self) -> StoreResult<Vec<AgentRecord>> {
        self.all("agent", "SELECT body FROM agents ORDER BY created_at, id", [])
    }

    fn delete_agent(&self, id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            if self.exec(tx, "DELETE FROM agents WHERE id = ?1", [id])? == 0 {
                return Ok(false);
            }
            self.exec(tx, "DELETE FROM blocks WHERE agent_id = ?1", [id])?;
            self.exec(
                tx,
                "DELETE FROM entries WHERE conversation_id IN (SELECT id FROM conversations WHERE agent_id = ?1)",
                [id],
            )?;
            self.exec(tx, "DELETE FROM conversations WHERE agent_id = ?1", [id])?;
            Ok(true)
        })
    }

    fn put_block(&self, agent_id: &str, block: &MemoryBlock) -> StoreResult<()> {
        let body = encode(block)?;
        self.execute(
            "INSERT INTO blocks (agent_id, label, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (agent_id, label) DO UPDATE SET body = excluded.body",
            params![agent_id, block.label, body],
        )
        .map(drop)
    }

    fn blocks(&self, agent_id: &str) -> StoreResult<Vec<MemoryBlock>> {
        self.all("memory block", "SELECT body FROM blocks WHERE agent_id = +?1 ORDER BY label", [agent_id])
    }

    fn put_conversation(&self, conversation: &ConversationRecord) -> StoreResult<()> {
        let body = encode(conversation)?;
        self.execute(
            "INSERT INTO conversations (id, agent_id, created_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, created_at = excluded.created_at,
                 body = excluded.body",
            params![conversation.id, conversation.agent_id, signed(conversation.created_at), body],
        )
        .map(drop)
    }

    fn conversation(&self, id: &str) -> StoreResult<Option<ConversationRecord>> {
        self.one("conversation", "SELECT body FROM conversations WHERE id = ?1", id)
    }

    fn conversations(&self, agent_id: Option<&str>) -> StoreResult<Vec<ConversationRecord>> {
        match agent_id {
            Some(agent) => self.all(
                "conversation",
                "SELECT body FROM conversations WHERE agent_id = +?1 ORDER BY created_at, id",
                [agent],
            ),
            None => self.all("conversation", "SELECT body FROM conversations ORDER BY created_at, id", []),
        }
    }

    fn append_entry(&self, conversation_id: &str, entry: &Entry) -> StoreResult<u64> {
        Ok(self.append_entry_if(conversation_id, entry, None)?.expect("no lease to lose"))
    }

    fn append_entry_fenced(&self, lease: &Lease, conversation_id: &str, entry: &Entry) -> StoreResult<Option<u64>> {
        self.append_entry_if(conversation_id, entry, Some(lease))
    }

    fn entries(&self, conversation_id: &str) -> StoreResult<Vec<(u64, Entry)>> {
        let raw = self.read(|conn| {
            conn.prepare_cached("SELECT seq, body FROM entries WHERE conversation_id = +?1 ORDER BY seq")?
                .query_map([conversation_id], seq_and_entry)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raw.iter().map(|(seq, body)| Ok((*seq as u64, decode("transcript entry", body)?))).collect()
    }

    fn entries_newest_first<'a>(
        &'a self,
        conversation_id: &str,
    ) -> Box<dyn Iterator<Item = StoreResult<(u64, Entry)>> + 'a> {
        // A page at a time: what needs only the recent end reads only that.
        let conversation_id = conversation_id.to_string();
        let mut before = i64::MAX;
        let mut page = std::collections::VecDeque::new();
        let mut exhausted = false;
        Box::new(std::iter::from_fn(move || {
            if page.is_empty() && !exhausted {
                let fetched = self.read(|conn| {
                    conn.prepare_cached(NEWEST_FIRST)?
                        .query_map(params![conversation_id, before], seq_and_entry)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                });
                match fetched {
                    Ok(rows) => {
                        exhausted = (rows.len() as i64) < PAGE;
                        before = rows.last().map_or(before, |(seq, _)| *seq);
                        page.extend(rows);
                    }
                    Err(e) => {
                        exhausted = true;
                        return Some(Err(e));
                    }
                }
            }
            let (seq, body) = page.pop_front()?;
            Some(decode("transcript entry", &body).map(|entry| (seq as u64, entry)))
        }))
    }

    fn has_entry(&self, conversation_id: &str, entry_id: &str) -> StoreResult<bool> {
        self.read(|conn| {
            conn.prepare_cached("SELECT 1 FROM entries WHERE conversation_id = ?1 AND entry_id = ?2")?
                .exists([conversation_id, entry_id])
        })
    }

    fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        let body = encode(approval)?;
        self.execute(
            "INSERT INTO approvals (id, created_at, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, body = excluded.body",
            params![approval.id, signed(approval.created_at), body],
        )
        .map(drop)
    }

    fn approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        self.one("approval", "SELECT body FROM approvals WHERE id = ?1", id)
    }

    fn remove_approval(&self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM approvals WHERE id = ?1", [id]).map(drop)
    }

    fn approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        self.all("approval", "SELECT body FROM approvals ORDER BY created_at, id", [])
    }

    fn put_grant(&self, grant: &Grant) -> StoreResult<()> {
        let body = encode(grant)?;
        self.execute(
            "INSERT INTO grants (chat, id, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (chat, id) DO UPDATE SET body = excluded.body",
            params![grant.chat, grant.id, body],
        )
        .map(drop)
    }

    fn grants(&self, chat: Option<&str>) -> StoreResult<Vec<Grant>> {
        match chat {
            Some(chat) => self.all("grant", "SELECT body FROM grants WHERE chat = +?1 ORDER BY id", [chat]),
            None => self.all("grant", "SELECT body FROM grants ORDER BY chat, id", []),
        }
    }

    fn remove_grant(&self, id: &str) -> StoreResult<bool> {
        Ok(self.execute("DELETE FROM grants WHERE id = ?1", [id])? > 0)
    }

    fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let body = encode(record)?;
        self.write(|tx| {
            let seq = tx.next_id();
            self.exec(tx, "INSERT INTO audit (seq, body) VALUES (?1, ?2)", params![signed(seq), body]).map(drop)
        })
    }

    fn audit(&self) -> StoreResult<Vec<AuditRecord>> {
        self.all("audit record", "SELECT body FROM audit ORDER BY seq", [])
    }

    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        let mut batch = KvBatch::new();
        batch.put(space, key, value.to_vec());
        self.kv_write(&batch)
    }

    fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.reading(space, key);
        self.read(|conn| {
            conn.prepare_cached("SELECT value FROM kv WHERE space = ?1 AND key = ?2")?
                .query_row([space, key], |row| row.get(0))
                .optional()
        })
    }

    fn kv_remove(&self, space: &str, key: &str) -> StoreResult<()> {
        let mut batch = KvBatch::new();
        batch.remove(space, key);
        self.kv_write(&batch)
    }

    fn kv_scan(&self, space: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        // Keys from the prefix on, up to the first that does not start with it
        // (a range read on the primary key, not a scan of the space).
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT key, value FROM kv WHERE space = +?1 AND key >= ?2 ORDER BY key")?;
            let mut rows = statement.query([space, prefix])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(prefix) {
                    break;
                }
                found.push((key, row.get(1)?));
            }
            Ok(found)
        })
    }

    fn kv_write(&self, batch: &KvBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.apply(batch, None, None).map(drop)
    }

    fn kv_write_if_absent(&self, space: &str, key: &str, batch: &KvBatch) -> StoreResult<bool> {
        self.apply(batch, Some((space, key)), None)
    }

    fn kv_write_fenced(&self, lease: &Lease, batch: &KvBatch) -> StoreResult<bool> {
        self.apply(batch, None, Some(lease))
    }

    fn lease_claim(&self, name: &str, holder: &str, ttl: std::time::Duration) -> StoreResult<Claim> {
        self.with_lease(name, |current, now| lease::claim(current, name, holder, lease::ttl_ms(ttl), now))
    }

    fn lease_renew(&self, lease: &Lease, ttl: std::time::Duration) -> StoreResult<Option<Lease>> {
        self.with_lease(&lease.name, |current, now| lease::renew(current, lease, lease::ttl_ms(ttl), now))
    }

    fn lease_release(&self, lease: &Lease) -> StoreResult<()> {
        self.with_lease(&lease.name, |current, now| (lease::release(current, lease, now), ()))
    }

    fn kv_spaces(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT DISTINCT space FROM kv ORDER BY space")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
    }

    fn next_id(&self) -> StoreResult<u64> {
        // Counted in the open transaction, without waiting for its flush: an id
        // counts once something durable holds it, and that write's commit stores
        // the counter too (see `Writer::commit`).
        self.stage(|tx| Ok(tx.next_id()))
    }

    fn reserve_ids(&self, id: u64) -> StoreResult<()> {
        // The file holds signed numbers: the next one after `id` must fit.
        if id >= i64::MAX as u64 {
            return Err(StoreError::Backend(format!("id {id} is past the largest the store can hold")));
        }
        self.write(|tx| {
            tx.reserve_ids(id);
            Ok(())
        })
    }

    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?.query_row([key], |row| row.get(0)).optional()
        })
    }

    fn put_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
        .map(drop)
    }

    fn metas(&self) -> StoreResult<Vec<(String, String)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT key, value FROM meta ORDER BY key")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
    }

    fn schema_version(&self) -> StoreResult<u32> {
        // Read from the file (readiness asks this to see that the store answers).
        self.read(|conn| conn.query_row("PRAGMA user_version", [], |row| row.get(0)))
    }

    fn broken(&self) -> Option<String> {
        self.refuse_if_broken().err().map(|e| e.to_string())
    }

    fn reads_inline(&self) -> bool {
        true
    }

    fn submit(&self, job: super::super::Job) -> Result<(), super::super::Job> {
        SqliteStore::submit(self, job)
    }

    fn close(&self) -> StoreResult<()> {
        // The directory lock goes with the store (dropped); every acknowledged
        // write is flushed.
        Ok(())
    }

    fn sizes(&self) -> StoreResult<Vec<TreeSize>> {
        let mut sizes: Vec<TreeSize> = self.read(|conn| {
            conn.prepare(
                "SELECT 'agents', count(*), coalesce(sum(length(id) + length(body)), 0) FROM agents
                 UNION ALL SELECT 'blocks', count(*), coalesce(sum(length(label) + length(body)), 0) FROM blocks
                 UNION ALL SELECT 'conversations', count(*), coalesce(sum(length(id) + length(body)), 0) FROM conversations
                 UNION ALL SELECT 'entries', count(*), coalesce(sum(length(entry_id) + length(body)), 0) FROM entries
                 UNION ALL SELECT 'approvals', count(*), coalesce(sum(length(id) + length(body)), 0) FROM approvals
                 UNION ALL SELECT 'grants', count(*), coalesce(sum(length(id) + length(body)), 0) FROM grants
                 UNION ALL SELECT 'audit', count(*), coalesce(sum(8 + length(body)), 0) FROM audit
                 UNION ALL SELECT 'kv:' || space, count(*), coalesce(sum(length(key) + length(value)), 0)
                     FROM kv GROUP BY space",
            )?
            .query_map([], |row| {
                Ok(TreeSize {
                    name: row.get(0)?,
                    records: row.get::<_, i64>(1)? as u64,
                    bytes: row.get::<_, i64>(2)? as u64,
                })
            })?
            .collect()
        })?;
        sizes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        Ok(sizes)
    }
}
