//! [`Store`] on PostgreSQL: each method one statement or one transaction.

use deadpool_postgres::GenericClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{entries, migrate, pg, PgStore};
use crate::store::{
    lease, AgentRecord, ApprovalRecord, AuditRecord, Claim, ConversationRecord, Entry, Grant, KvBatch, KvOp, Lease,
    MemoryBlock, Store, StoreError, StoreResult, TreeSize,
};

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(super) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode { what, detail: e.to_string() })
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One statement (prepared once per connection); how many rows it changed.
pub(super) async fn exec(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(pg)?;
    client.execute(&statement, params).await.map_err(pg)
}

/// One query (prepared once per connection); its rows.
pub(super) async fn rows(client: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(pg)?;
    client.query(&statement, params).await.map_err(pg)
}

/// Whether `lease` is still held with its fence, in transaction `tx`. The shared
/// row lock holds off a new holder's claim until this commit: two holders'
/// writes never interleave.
async fn held_in(tx: &impl GenericClient, lease: &Lease) -> StoreResult<bool> {
    let held = rows(
        tx,
        "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND fence = $3
         AND expires_at_ms >= switchboard_now_ms() FOR SHARE",
        &[&lease.name, &lease.holder, &signed(lease.fence)],
    )
    .await?;
    Ok(!held.is_empty())
}

/// How many records each part holds and their bytes, largest first.
pub(super) async fn sizes(client: &tokio_postgres::Client) -> StoreResult<Vec<TreeSize>> {
    let rows = client
        .query(
            "SELECT 'agents', count(*), coalesce(sum(octet_length(id) + octet_length(body)), 0) FROM agents
             UNION ALL SELECT 'blocks', count(*), coalesce(sum(octet_length(label) + octet_length(body)), 0) FROM blocks
             UNION ALL SELECT 'conversations', count(*), coalesce(sum(octet_length(id) + octet_length(body)), 0) FROM conversations
             UNION ALL SELECT 'entries', count(*), coalesce(sum(octet_length(entry_id) + octet_length(body)), 0) FROM entries
             UNION ALL SELECT 'approvals', count(*), coalesce(sum(octet_length(id) + octet_length(body)), 0) FROM approvals
             UNION ALL SELECT 'grants', count(*), coalesce(sum(octet_length(id) + octet_length(body)), 0) FROM grants
             UNION ALL SELECT 'audit', count(*), coalesce(sum(8 + octet_length(body)), 0) FROM audit
             UNION ALL SELECT 'kv:' || space, count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)
                 FROM kv GROUP BY space",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut sizes: Vec<TreeSize> = rows
        .iter()
        .map(|row| TreeSize {
            name: row.get(0),
            records: row.get::<_, i64>(1) as u64,
            bytes: row.get::<_, i64>(2) as u64,
        })
        .collect();
    sizes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(sizes)
}

/// A lease from a row of (holder, fence, expires_at_ms).
fn lease_from(name: &str, row: &Row) -> Lease {
    Lease {
        name: name.to_string(),
        holder: row.get(0),
        fence: row.get::<_, i64>(1) as u64,
        expires_at_ms: row.get::<_, i64>(2).max(0) as u64,
    }
}

/// Milliseconds and ids are stored as `bigint`.
fn signed(n: u64) -> i64 {
    n as i64
}

fn decode_rows<T: DeserializeOwned>(what: &'static str, rows: &[tokio_postgres::Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(|row| decode(what, row.get::<_, &[u8]>(0))).collect()
}

/// The smallest string greater than every string that starts with `prefix`
/// (byte order), or `None` when there is none.
fn upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl PgStore {
    /// Runs one statement that changes rows; how many.
    fn execute(&self, sql: &'static str, params: Vec<Box<dyn ToSql + Send + Sync>>) -> StoreResult<u64> {
        self.run(move |client| async move {
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
            exec(&client, sql, &params).await
        })
    }

    /// Runs one query; its rows.
    fn query(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        self.run(move |client| async move {
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
            rows(&client, sql, &params).await
        })
    }

    /// The first column of the row found, decoded.
    fn one<T: DeserializeOwned + Send + 'static>(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> StoreResult<Option<T>> {
        let rows = self.query(sql, params)?;
        rows.first().map(|row| decode(what, row.get::<_, &[u8]>(0))).transpose()
    }

    /// Applies `batch` in one transaction, only when `guard` (space, key) holds
    /// nothing, and only while `lease` is held (if given); whether it applied.
    /// Appends `entry`, while `lease` (when given) is still held.
    fn append_entry_if(&self, conversation_id: &str, entry: &Entry, lease: Option<Lease>) -> StoreResult<Option<u64>> {
        let (conversation_id, entry_id, body) = (conversation_id.to_string(), entry.id().to_string(), encode(entry)?);
        let updated_at = entry.msg.timestamp;
        self.run(move |mut client| async move {
            // The entry and the conversation's time together, or none; and only
            // while the lease is held.
            let tx = client.transaction().await.map_err(pg)?;
            if let Some(lease) = lease {
                if !held_in(&tx, &lease).await? {
                    tx.rollback().await.map_err(pg)?;
                    return Ok(None);
                }
            }
            let seq: i64 = rows(&tx, "SELECT nextval('ids')", &[]).await?[0].get(0);
            exec(
                &tx,
                "INSERT INTO entries (conversation_id, seq, entry_id, body) VALUES ($1, $2, $3, $4)",
                &[&conversation_id, &seq, &entry_id, &body],
            )
            .await?;
            let found =
                rows(&tx, "SELECT body FROM conversations WHERE id = $1 FOR UPDATE", &[&conversation_id]).await?;
            if let Some(row) = found.first() {
                let mut conversation: ConversationRecord = decode("conversation", row.get::<_, &[u8]>(0))?;
                conversation.updated_at = updated_at;
                exec(
                    &tx,
                    "UPDATE conversations SET body = $2 WHERE id = $1",
                    &[&conversation_id, &encode(&conversation)?],
                )
                .await?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(Some(seq as u64))
        })
    }

    fn apply(&self, batch: &KvBatch, guard: Option<(String, String)>, lease: Option<Lease>) -> StoreResult<bool> {
        let ops = batch.ops().to_vec();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            if let Some(lease) = lease {
                if !held_in(&tx, &lease).await? {
                    tx.rollback().await.map_err(pg)?;
                    return Ok(false);
                }
            }
            if let Some((space, key)) = guard {
                // The row lock (or, for an absent key, the insert's conflict) keeps
                // two writers from both finding it absent.
                let inserted = exec(
                    &tx,
                    "INSERT INTO kv (space, key, value) VALUES ($1, $2, '') ON CONFLICT DO NOTHING",
                    &[&space, &key],
                )
                .await?;
                if inserted == 0 {
                    tx.rollback().await.map_err(pg)?;
                    return Ok(false);
                }
                // The placeholder is overwritten by the batch (or removed if the
                // batch does not write the guarded key).
                let writes_guard =
                    ops.iter().any(|op| matches!(op, KvOp::Put { space: s, key: k, .. } if *s == space && *k == key));
                if !writes_guard {
                    exec(&tx, "DELETE FROM kv WHERE space = $1 AND key = $2", &[&space, &key]).await?;
                }
            }
            for op in &ops {
                match op {
                    KvOp::Put { space, key, value } => {
                        exec(
                            &tx,
                            "INSERT INTO kv (space, key, value) VALUES ($1, $2, $3)
                             ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                            &[space, key, value],
                        )
                        .await?;
                    }
                    KvOp::Remove { space, key } => {
                        exec(&tx, "DELETE FROM kv WHERE space = $1 AND key = $2", &[space, key]).await?;
                    }
                }
            }
            tx.commit().await.map_err(pg)?;
            Ok(true)
        })
    }
}

/// Boxes statement parameters.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        vec![$(Box::new($p) as Box<dyn ToSql + Send + Sync>),*]
    };
}

impl Store for PgStore {
    fn put_agent(&self, agent: &AgentRecord) -> StoreResult<()> {
        self.execute(
            "INSERT INTO agents (id, created_at, body) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, body = excluded.body",
            params![agent.id.clone(), signed(agent.created_at), encode(agent)?],
        )
        .map(|_| ())
    }

    fn agent(&self, id: &str) -> StoreResult<Option<AgentRecord>> {
        self.one("agent", "SELECT body FROM agents WHERE id = $1", params![id.to_string()])
    }

    fn agents(&self) -> StoreResult<Vec<AgentRecord>> {
        decode_rows("agent", &self.query("SELECT body FROM agents ORDER BY created_at, id", params![])?)
    }

    fn delete_agent(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            if exec(&tx, "DELETE FROM agents WHERE id = $1", &[&id]).await? == 0 {
                return Ok(false);
            }
            exec(&tx, "DELETE FROM blocks WHERE agent_id = $1", &[&id]).await?;
            exec(
                &tx,
                "DELETE FROM entries WHERE conversation_id IN (SELECT id FROM conversations WHERE agent_id = $1)",
                &[&id],
            )
            .await?;
            exec(&tx, "DELETE FROM conversations WHERE agent_id = $1", &[&id]).await?;
            tx.commit().await.map_err(pg)?;
            Ok(true)
        })
    }

    fn put_block(&self, agent_id: &str, block: &MemoryBlock) -> StoreResult<()> {
        self.execute(
            "INSERT INTO blocks (agent_id, label, body) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id, label) DO UPDATE SET body = excluded.body",
            params![agent_id.to_string(), block.label.clone(), encode(block)?],
        )
        .map(|_| ())
    }

    fn blocks(&self, agent_id: &str) -> StoreResult<Vec<MemoryBlock>> {
        let rows =
            self.query("SELECT body FROM blocks WHERE agent_id = $1 ORDER BY label", params![agent_id.to_string()])?;
        decode_rows("memory block", &rows)
    }

    fn put_conversation(&self, conversation: &ConversationRecord) -> StoreResult<()> {
        self.execute(
            "INSERT INTO conversations (id, agent_id, created_at, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id, created_at = excluded.created_at,
                 body = excluded.body",
            params![
                conversation.id.clone(),
                conversation.agent_id.clone(),
                signed(conversation.created_at),
                encode(conversation)?
            ],
        )
        .map(|_| ())
    }

    fn conversation(&self, id: &str) -> StoreResult<Option<ConversationRecord>> {
        self.one("conversation", "SELECT body FROM conversations WHERE id = $1", params![id.to_string()])
    }

    fn conversations(&self, agent_id: Option<&str>) -> StoreResult<Vec<ConversationRecord>> {
        let rows = match agent_id {
            Some(agent) => self.query(
                "SELECT body FROM conversations WHERE agent_id = $1 ORDER BY created_at, id",
                params![agent.to_string()],
            )?,
            None => self.query("SELECT body FROM conversations ORDER BY created_at, id", params![])?,
        };
        decode_rows("conversation", &rows)
    }

    fn append_entry(&self, conversation_id: &str, entry: &Entry) -> StoreResult<u64> {
        Ok(self.append_entry_if(conversation_id, entry, None)?.expect("no lease to lose"))
    }

    fn append_entry_fenced(&self, lease: &Lease, conversation_id: &str, entry: &Entry) -> StoreResult<Option<u64>> {
        self.append_entry_if(conversation_id, entry, Some(lease.clone()))
    }

    fn entries(&self, conversation_id: &str) -> StoreResult<Vec<(u64, Entry)>> {
        let rows = self.query(
            "SELECT body, seq FROM entries WHERE conversation_id = $1 ORDER BY seq",
            params![conversation_id.to_string()],
        )?;
        rows.iter()
            .map(|row| Ok((row.get::<_, i64>(1) as u64, decode("transcript entry", row.get::<_, &[u8]>(0))?)))
            .collect()
    }

    fn entries_newest_first<'a>(
        &'a self,
        conversation_id: &str,
    ) -> Box<dyn Iterator<Item = StoreResult<(u64, Entry)>> + 'a> {
        Box::new(entries::NewestFirst::new(self, conversation_id))
    }

    fn has_entry(&self, conversation_id: &str, entry_id: &str) -> StoreResult<bool> {
        let rows = self.query(
            "SELECT 1 FROM entries WHERE conversation_id = $1 AND entry_id = $2 LIMIT 1",
            params![conversation_id.to_string(), entry_id.to_string()],
        )?;
        Ok(!rows.is_empty())
    }

    fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        self.execute(
            "INSERT INTO approvals (id, created_at, body) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, body = excluded.body",
            params![approval.id.clone(), signed(approval.created_at), encode(approval)?],
        )
        .map(|_| ())
    }

    fn approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        self.one("approval", "SELECT body FROM approvals WHERE id = $1", params![id.to_string()])
    }

    fn remove_approval(&self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM approvals WHERE id = $1", params![id.to_string()]).map(|_| ())
    }

    fn approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        decode_rows("approval", &self.query("SELECT body FROM approvals ORDER BY created_at, id", params![])?)
    }

    fn put_grant(&self, grant: &Grant) -> StoreResult<()> {
        self.execute(
            "INSERT INTO grants (chat, id, body) VALUES ($1, $2, $3)
             ON CONFLICT (chat, id) DO UPDATE SET body = excluded.body",
            params![grant.chat.clone(), grant.id.clone(), encode(grant)?],
        )
        .map(|_| ())
    }

    fn grants(&self, chat: Option<&str>) -> StoreResult<Vec<Grant>> {
        let rows = match chat {
            Some(chat) => {
                self.query("SELECT body FROM grants WHERE chat = $1 ORDER BY id", params![chat.to_string()])?
            }
            None => self.query("SELECT body FROM grants ORDER BY chat, id", params![])?,
        };
        decode_rows("grant", &rows)
    }

    fn remove_grant(&self, id: &str) -> StoreResult<bool> {
        Ok(self.execute("DELETE FROM grants WHERE id = $1", params![id.to_string()])? > 0)
    }

    fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        self.execute("INSERT INTO audit (seq, body) VALUES (nextval('ids'), $1)", params![encode(record)?]).map(|_| ())
    }

    fn audit(&self) -> StoreResult<Vec<AuditRecord>> {
        decode_rows("audit record", &self.query("SELECT body FROM audit ORDER BY seq", params![])?)
    }

    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        let mut batch = KvBatch::new();
        batch.put(space, key, value.to_vec());
        self.kv_write(&batch)
    }

    fn kv_get(&self, space: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let rows = self
            .query("SELECT value FROM kv WHERE space = $1 AND key = $2", params![space.to_string(), key.to_string()])?;
        Ok(rows.first().map(|row| row.get::<_, Vec<u8>>(0)))
    }

    fn kv_remove(&self, space: &str, key: &str) -> StoreResult<()> {
        let mut batch = KvBatch::new();
        batch.remove(space, key);
        self.kv_write(&batch)
    }

    fn kv_scan(&self, space: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let rows = match upper_bound(prefix) {
            Some(upper) => self.query(
                "SELECT key, value FROM kv WHERE space = $1 AND key >= $2 AND key < $3 ORDER BY key",
                params![space.to_string(), prefix.to_string(), upper],
            )?,
            None => self.query(
                "SELECT key, value FROM kv WHERE space = $1 AND key >= $2 ORDER BY key",
                params![space.to_string(), prefix.to_string()],
            )?,
        };
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn kv_write(&self, batch: &KvBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.apply(batch, None, None).map(|_| ())
    }

    fn kv_write_if_absent(&self, space: &str, key: &str, batch: &KvBatch) -> StoreResult<bool> {
        self.apply(batch, Some((space.to_string(), key.to_string())), None)
    }

    fn kv_write_fenced(&self, lease: &Lease, batch: &KvBatch) -> StoreResult<bool> {
        self.apply(batch, None, Some(lease.clone()))
    }

    fn shared(&self) -> bool {
        self.shared
    }

    fn announce(&self) -> StoreResult<()> {
        let notify = format!("NOTIFY {}", super::listen::CHANNEL);
        self.run(move |client| async move { exec(&client, &notify, &[]).await.map(drop) })
    }

    fn announcements(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.heard.clone()
    }

    fn lease_claim(&self, name: &str, holder: &str, ttl: std::time::Duration) -> StoreResult<Claim> {
        // The server's clock, so that processes on other machines agree.
        let rows = self.query(
            "INSERT INTO leases AS l (name, holder, fence, expires_at_ms)
             VALUES ($1, $2, 1, switchboard_now_ms() + $3)
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder,
                 fence = CASE WHEN l.holder = excluded.holder AND l.expires_at_ms >= switchboard_now_ms()
                     THEN l.fence ELSE l.fence + 1 END,
                 expires_at_ms = excluded.expires_at_ms
             WHERE l.holder = excluded.holder OR l.expires_at_ms < switchboard_now_ms()
             RETURNING holder, fence, expires_at_ms",
            params![name.to_string(), holder.to_string(), signed(lease::ttl_ms(ttl))],
        )?;
        if let Some(row) = rows.first() {
            return Ok(Claim::Held(lease_from(name, row)));
        }
        let rows =
            self.query("SELECT holder, fence, expires_at_ms FROM leases WHERE name = $1", params![name.to_string()])?;
        let held = rows.first().map(|row| lease_from(name, row));
        // (Let go of between the two statements: "taken" until now is still true.)
        Ok(Claim::Taken {
            holder: held.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
            until_ms: held.map(|l| l.expires_at_ms).unwrap_or_default(),
        })
    }

    fn lease_renew(&self, lease: &Lease, ttl: std::time::Duration) -> StoreResult<Option<Lease>> {
        let rows = self.query(
            "UPDATE leases SET expires_at_ms = switchboard_now_ms() + $4
             WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at_ms >= switchboard_now_ms()
             RETURNING holder, fence, expires_at_ms",
            params![lease.name.clone(), lease.holder.clone(), signed(lease.fence), signed(lease::ttl_ms(ttl))],
        )?;
        Ok(rows.first().map(|row| lease_from(&lease.name, row)))
    }

    fn lease_release(&self, lease: &Lease) -> StoreResult<()> {
        self.execute(
            "UPDATE leases SET expires_at_ms = 0
             WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at_ms >= switchboard_now_ms()",
            params![lease.name.clone(), lease.holder.clone(), signed(lease.fence)],
        )
        .map(|_| ())
    }

    fn kv_spaces(&self) -> StoreResult<Vec<String>> {
        let rows = self.query("SELECT DISTINCT space FROM kv ORDER BY space", params![])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn reserve_ids(&self, id: u64) -> StoreResult<()> {
        self.query("SELECT setval('ids', greatest($1, (SELECT last_value FROM ids)))", params![signed(id)]).map(|_| ())
    }

    fn next_id(&self) -> StoreResult<u64> {
        let rows = self.query("SELECT nextval('ids')", params![])?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        let rows = self.query("SELECT value FROM meta WHERE key = $1", params![key.to_string()])?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn put_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key.to_string(), value.to_string()],
        )
        .map(|_| ())
    }

    fn metas(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = self.query("SELECT key, value FROM meta ORDER BY key", params![])?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn schema_version(&self) -> StoreResult<u32> {
        self.run(|client| async move { migrate::version(&client).await }).map(|v| v as u32)
    }

    fn close(&self) -> StoreResult<()> {
        self.release()
    }

    fn sizes(&self) -> StoreResult<Vec<TreeSize>> {
        self.run(|client| async move { sizes(&client).await })
    }
}

#[cfg(test)]
mod tests {
    use super::upper_bound;

    #[test]
    fn the_upper_bound_of_a_prefix_is_just_past_every_key_with_it() {
        assert_eq!(upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(upper_bound(""), None);
        assert_eq!(upper_bound("\u{10FFFF}"), None);
    }
}
