//! The on-disk schema version and the hook that upgrades older data directories.

use super::{StoreError, StoreResult};

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 3;

pub const VERSION_KEY: &str = "schema_version";

/// Upgrades a database from version `from` to `from + 1`.
pub struct Migration {
    pub from: u32,
    pub run: fn(&sled::Db) -> StoreResult<()>,
}

/// Migrations in order; a change to a stored format adds one here.
pub const MIGRATIONS: &[Migration] =
    &[Migration { from: 1, run: forget_broad_grants }, Migration { from: 2, run: index_entry_ids }];

/// 1 → 2: "always allow here" grants covered a whole tool for everyone in a chat,
/// forever. They are forgotten rather than narrowed by guessing: the next request
/// asks again and its grant covers what is shown.
fn forget_broad_grants(db: &sled::Db) -> StoreResult<()> {
    let grants = db.open_tree("grants").map_err(backend)?;
    grants.clear().map_err(backend)?;
    Ok(())
}

/// 2 → 3: transcript entries get an index by id (conversation, entry id →
/// sequence number), so finding a message is a lookup, not a read of the whole
/// transcript.
fn index_entry_ids(db: &sled::Db) -> StoreResult<()> {
    let entries = db.open_tree("entries").map_err(backend)?;
    let ids = db.open_tree("entry_ids").map_err(backend)?;
    for item in entries.iter() {
        let (key, value) = item.map_err(backend)?;
        let Some(split) = key.iter().position(|b| *b == 0) else { continue };
        let (conversation, seq) = (&key[..split], &key[split + 1..]);
        // Only the id is needed; an entry that cannot be read stays unindexed (it
        // fails where it is read, as before) rather than stopping the upgrade.
        #[derive(serde::Deserialize)]
        struct Id {
            msg: IdOnly,
        }
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: String,
        }
        let Ok(entry) = serde_json::from_slice::<Id>(&value) else {
            tracing::warn!("a transcript entry could not be read while indexing; left unindexed");
            continue;
        };
        let mut index_key = conversation.to_vec();
        index_key.push(0);
        index_key.extend_from_slice(entry.msg.id.as_bytes());
        ids.insert(index_key, seq).map_err(backend)?;
    }
    Ok(())
}

/// Brings `db` to `target`, running each needed migration once and recording the new
/// version after each step, so a crash mid-upgrade resumes at the right step.
pub fn upgrade(db: &sled::Db, dir: &std::path::Path, target: u32, migrations: &[Migration]) -> StoreResult<()> {
    let meta = db.open_tree("meta").map_err(backend)?;
    let found = match meta.get(VERSION_KEY).map_err(backend)? {
        None => {
            // A new directory starts at the current version.
            meta.insert(VERSION_KEY, target.to_string().as_bytes()).map_err(backend)?;
            db.flush().map_err(backend)?;
            return Ok(());
        }
        Some(raw) => parse_version(&raw).ok_or_else(|| StoreError::Corrupt {
            dir: dir.to_path_buf(),
            detail: "the schema version record is unreadable".into(),
        })?,
    };
    if found > target {
        return Err(StoreError::NewerSchema { dir: dir.to_path_buf(), found, supported: target });
    }
    let mut version = found;
    while version < target {
        let step = migrations.iter().find(|m| m.from == version).ok_or_else(|| StoreError::Corrupt {
            dir: dir.to_path_buf(),
            detail: format!("no migration from schema {version}"),
        })?;
        (step.run)(db)?;
        version += 1;
        meta.insert(VERSION_KEY, version.to_string().as_bytes()).map_err(backend)?;
        db.flush().map_err(backend)?;
        tracing::info!(version, "data directory upgraded");
    }
    Ok(())
}

pub fn parse_version(raw: &[u8]) -> Option<u32> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}
