//! The database schema, as embedded migrations applied at start in one transaction
//! under an advisory lock: processes starting together apply each one once.

use tokio_postgres::Client;

use super::pg;
use crate::store::{StoreError, StoreResult};

/// The transaction-level advisory lock key that serialises migrations.
const MIGRATION_LOCK: i64 = 0x5377_6974_6368_0002;

/// Each migration's SQL, in order; version `n` is `MIGRATIONS[n - 1]`. Keys are
/// `COLLATE "C"` so that they sort by bytes, as the sled store's keys do.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE agents (id text COLLATE "C" PRIMARY KEY, created_at bigint NOT NULL, body bytea NOT NULL);
CREATE TABLE blocks (
    agent_id text COLLATE "C" NOT NULL, label text COLLATE "C" NOT NULL, body bytea NOT NULL,
    PRIMARY KEY (agent_id, label));
CREATE TABLE conversations (
    id text COLLATE "C" PRIMARY KEY, agent_id text COLLATE "C" NOT NULL, created_at bigint NOT NULL,
    body bytea NOT NULL);
CREATE INDEX conversations_by_agent ON conversations (agent_id);
CREATE TABLE entries (
    conversation_id text COLLATE "C" NOT NULL, seq bigint NOT NULL, entry_id text COLLATE "C" NOT NULL,
    body bytea NOT NULL, PRIMARY KEY (conversation_id, seq));
CREATE INDEX entries_by_id ON entries (conversation_id, entry_id);
CREATE TABLE approvals (id text COLLATE "C" PRIMARY KEY, created_at bigint NOT NULL, body bytea NOT NULL);
CREATE TABLE grants (
    chat text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, body bytea NOT NULL, PRIMARY KEY (chat, id));
CREATE INDEX grants_by_id ON grants (id);
CREATE TABLE audit (seq bigint PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE kv (
    space text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, value bytea NOT NULL,
    PRIMARY KEY (space, key));
CREATE SEQUENCE ids;
"#,
    r#"
CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY, holder text NOT NULL, fence bigint NOT NULL, expires_at_ms bigint NOT NULL);
CREATE FUNCTION switchboard_now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
"#,
];

/// The schema version this build sets up.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies what is missing; refuses a database set up by a newer build.
pub async fn apply(client: &mut Client) -> StoreResult<()> {
    // Keys are compared by bytes (COLLATE "C"), as sled's are, only in UTF-8.
    let encoding: String = client.query_one("SHOW server_encoding", &[]).await.map_err(pg)?.get(0);
    if encoding != "UTF8" {
        return Err(StoreError::Backend(format!(
            "the database's encoding is {encoding}; switchboard needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')"
        )));
    }
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg)?;
    let row = tx.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await.map_err(pg)?;
    let found: i32 = row.get(0);
    if found > VERSION {
        let database = tx.query_one("SELECT current_database()", &[]).await.map_err(pg)?.get(0);
        return Err(StoreError::NewerDatabase { database, found, supported: VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version]).await.map_err(pg)?;
        tracing::info!(version, "database migration applied");
    }
    tx.commit().await.map_err(pg)
}

/// The version a database is at (0 before it was set up).
pub async fn version(client: &Client) -> StoreResult<i32> {
    let exists: bool =
        client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
    if !exists {
        return Ok(0);
    }
    let row = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await.map_err(pg)?;
    Ok(row.get(0))
}
