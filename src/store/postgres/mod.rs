//! The PostgreSQL implementation of [`Store`](super::Store): the same records as
//! the sled store (JSON values), in tables of one database, each write one
//! transaction committed before the call returns (PostgreSQL shares a WAL flush
//! between the commits of the same moment).
//!
//! The trait is synchronous and called from blocking threads; the store owns a
//! small runtime of its own where its connections live, and each call waits for
//! its query there.

mod entries;
mod migrate;
mod records;

use std::future::Future;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{StoreError, StoreResult};

/// A connection string without its password: what messages may show.
pub fn describe(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
            format!("{db} on {host}:{port}")
        }
        Err(_) => "a database whose URL cannot be read".into(),
    }
}

/// How to reach the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database` (or the key=value form).
    pub url: String,
    /// Connections kept open at most.
    pub pool_size: usize,
}

/// The store in a PostgreSQL database. One switchboard process uses a database at
/// a time (held by a session-level advisory lock until it exits).
pub struct PgStore {
    runtime: Background,
    pool: Pool,
    /// Where, for messages (no password).
    database: String,
    /// The connection holding the one-process lock.
    owner: Option<tokio_postgres::Client>,
}

/// The advisory lock key a running switchboard holds on its database.
const OWNER_LOCK: i64 = 0x5377_6974_6368_0001;

impl PgStore {
    /// Connects, applies the embedded migrations (under an advisory lock, so
    /// processes starting together are safe) and takes the database for this
    /// process.
    pub fn open(options: &PgOptions) -> StoreResult<PgStore> {
        let database = describe(&options.url);
        let config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| StoreError::Unreachable { database: database.clone(), cause: format!("{e}") })?;
        let runtime = Background(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("switchboard-postgres")
                .enable_all()
                .build()
                .map_err(|e| StoreError::Backend(format!("cannot start the database runtime: {e}")))?,
        ));
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the database pool: {e}")))?;
        let unreachable = {
            let database = database.clone();
            move |e: tokio_postgres::Error| StoreError::Unreachable { database: database.clone(), cause: cause(&e) }
        };
        // The schema first: processes starting together wait for each other on
        // the migration lock, and each migration is applied once.
        block_on(&runtime, {
            let pool = pool.clone();
            let database = database.clone();
            async move {
                let mut client =
                    pool.get().await.map_err(|e| StoreError::Unreachable { database, cause: pool_cause(e) })?;
                migrate::apply(&mut client).await
            }
        })?;
        let owner = block_on(&runtime, {
            let (config, database) = (config.clone(), database.clone());
            async move {
                let (client, connection) = config.connect(NoTls).await.map_err(unreachable)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&OWNER_LOCK]).await.map_err(pg)?;
                if !row.get::<_, bool>(0) {
                    return Err(StoreError::DatabaseInUse { database });
                }
                Ok(client)
            }
        })?;
        Ok(PgStore { runtime, pool, database, owner: Some(owner) })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Runs `work` with a pooled connection on the store's runtime and waits for it.
    fn run<T, F, Fut>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let database = self.database.clone();
        block_on(self.runtime(), async move {
            let client = pool.get().await.map_err(|e| StoreError::Unreachable { database, cause: pool_cause(e) })?;
            work(client).await
        })
    }

    /// Where the store is (no password).
    pub fn database(&self) -> &str {
        &self.database
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Let go of the database at once, not when the server notices the closed
        // connection: the next process (a restart) may take it right away.
        if let Some(owner) = self.owner.take() {
            let _ = block_on(&self.runtime, async move {
                let unlock = owner.execute("SELECT pg_advisory_unlock($1)", &[&OWNER_LOCK]);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), unlock).await;
                Ok(())
            });
        }
    }
}

/// The store's own runtime, shut down without waiting when dropped (a runtime
/// may not block while dropped inside another runtime's task).
struct Background(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Background {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits on this thread for `work`, run on `runtime` (so it works from a blocking
/// thread and from inside another runtime alike).
fn block_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    work: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    let task = runtime.spawn(work);
    futures::executor::block_on(task).map_err(|e| StoreError::Backend(format!("a database task failed: {e}")))?
}

/// The database's own words for an error, without Rust's wrapping.
fn cause(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
    }
}

/// Why the pool gave no connection, in the database's words where it has them.
fn pool_cause(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => cause(&e),
        other => other.to_string(),
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("database: {}", cause(&e)))
}
