//! The PostgreSQL implementation of [`Store`](super::Store): the same records as
//! the sled store (JSON values), in tables of one database, each write one
//! transaction committed before the call returns (PostgreSQL shares a WAL flush
//! between the commits of the same moment).
//!
//! The trait is synchronous and called from blocking threads; the store owns a
//! small runtime of its own where its connections live, and each call waits for
//! its query there.

mod entries;
mod listen;
mod migrate;
mod records;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{StoreError, StoreResult};

/// A connection string without its password: what messages may show.
pub fn describe(url: &str) -> String {
    // `user:pa@ss@host` is read with the host `ss@host`: showing it would show
    // part of the password.
    let authority = url.split_once("://").map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    if authority.is_some_and(|a| a.matches('@').count() > 1) {
        return "a database whose URL has an unescaped @ (write it as %40)".into();
    }
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

/// How to reach the database: the `[store.postgres]` settings (their `Debug`
/// hides the URL).
pub use crate::config::PostgresSettings as PgOptions;

/// How long connecting, waiting for a pooled connection, and one statement may
/// take before the store call fails (rather than hang on a dead server).
const TIMEOUT: Duration = Duration::from_secs(30);

/// What `check` learns without taking the database or changing it.
pub struct Probe {
    /// The schema version (0: not set up yet).
    pub version: i32,
    /// Whether a switchboard holds it now.
    pub in_use: bool,
    /// Its largest parts (empty when not set up).
    pub sizes: Vec<crate::store::TreeSize>,
}

/// The store in a PostgreSQL database. One switchboard process uses a database at
/// a time (held by a session-level advisory lock until it exits), or several
/// replicas share it (each holding that lock in shared mode, so a process that is
/// not a replica is refused while any replica runs, and the other way round).
pub struct PgStore {
    runtime: Background,
    pool: Pool,
    /// Where, for messages (no password).
    database: String,
    /// The connection holding the one-process lock.
    owner: Mutex<Owner>,
    config: tokio_postgres::Config,
    /// Whether the lock is held in shared mode (replicas).
    shared: bool,
    /// Announcements heard (replicas only).
    heard: Option<tokio::sync::watch::Receiver<u64>>,
}

/// The connection that holds the database for this process.
struct Owner {
    client: Option<tokio_postgres::Client>,
    /// Set when it closed (the server restarted, the network dropped it): the
    /// lock is gone with it and must be taken again.
    lost: Arc<AtomicBool>,
    /// Let go of on purpose ([`crate::store::Store::close`]): not taken again.
    closed: bool,
}

/// The advisory lock key a running switchboard holds on its database.
const OWNER_LOCK: i64 = 0x5377_6974_6368_0001;

impl PgStore {
    /// Connects, takes the database for this process (or fails with
    /// [`StoreError::DatabaseInUse`]), and brings its schema up to date with the
    /// embedded migrations (under an advisory lock, each applied once).
    pub fn open(options: &PgOptions) -> StoreResult<PgStore> {
        let database = describe(&options.url);
        let config = config(options, &database)?;
        let runtime = runtime()?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot set up the database pool: {e}")))?;
        // The database first, then its schema: a process that may not use it
        // changes nothing (processes setting up one database together still wait
        // for each other on the migration lock).
        let shared = options.replicas.enabled;
        let owner = block_on(&runtime, take(config.clone(), database.clone(), shared))?;
        let heard = shared.then(|| {
            let (tell, heard) = tokio::sync::watch::channel(0u64);
            runtime.spawn(listen::run(config.clone(), tell));
            heard
        });
        let store = PgStore { runtime, pool, database, owner: Mutex::new(owner), config, shared, heard };
        store.run(|mut client| async move { migrate::apply(&mut client).await })?;
        Ok(store)
    }

    /// The schema version, whether a switchboard holds the database, and its
    /// largest parts, without taking it or changing anything (for `check`).
    pub fn probe(options: &PgOptions) -> StoreResult<Probe> {
        let database = describe(&options.url);
        let config = config(options, &database)?;
        let runtime = runtime()?;
        block_on(&runtime, async move {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| unreachable(&database, &e))?;
            tokio::spawn(connection);
            let version = migrate::version(&client).await?;
            // Held by a session of another process, as pg_locks shows it (an
            // advisory lock belongs to one database; a bigint key is its high and
            // low 32 bits).
            let in_use: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
                    &[&(OWNER_LOCK >> 32), &(OWNER_LOCK & 0xFFFF_FFFF)],
                )
                .await
                .map_err(pg)?
                .get(0);
            let sizes = if version > 0 { records::sizes(&client).await? } else { Vec::new() };
            Ok(Probe { version, in_use, sizes })
        })
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
        self.retake_if_lost()?;
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

    /// Lets go of the database at once, not when the server notices the closed
    /// connection: the next process (a restart) may take it right away. Later
    /// calls fail rather than take it again.
    fn release(&self) -> StoreResult<()> {
        let mut owner = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(client) = owner.client.take() else { return Ok(()) };
        owner.closed = true;
        let shared = self.shared;
        block_on(&self.runtime, async move {
            let unlock = client.execute(
                if shared { "SELECT pg_advisory_unlock_shared($1)" } else { "SELECT pg_advisory_unlock($1)" },
                &[&OWNER_LOCK],
            );
            let _ = tokio::time::timeout(Duration::from_secs(2), unlock).await;
            Ok(())
        })
    }

    /// Takes the database again if the connection that held it closed; fails
    /// (and so does every store call) while another process holds it.
    fn retake_if_lost(&self) -> StoreResult<()> {
        let mut owner = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        if owner.closed {
            return Err(StoreError::Backend("the store was closed".into()));
        }
        if !owner.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        *owner = block_on(&self.runtime, take(self.config.clone(), self.database.clone(), self.shared))?;
        tracing::warn!("the connection holding the database closed; it was taken again");
        Ok(())
    }
}

/// The store's own runtime: one worker thread where its connections live (the
/// callers wait from their own threads, so it must run by itself).
fn runtime() -> StoreResult<Background> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("switchboard-postgres")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot start the database runtime: {e}")))?;
    Ok(Background(Some(runtime)))
}

/// The connection settings, with bounds on connecting and on each statement.
fn config(options: &PgOptions, database: &str) -> StoreResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|e| StoreError::Unreachable { database: database.to_string(), cause: format!("{e}") })?;
    // Leases and guarded writes rely on READ COMMITTED's re-check of a row
    // changed meanwhile, whatever the server's default.
    let statement_timeout =
        format!("-c statement_timeout={} -c default_transaction_isolation=read\\ committed", TIMEOUT.as_millis());
    let options = match config.get_options() {
        Some(given) => format!("{given} {statement_timeout}"),
        None => statement_timeout,
    };
    config.options(options).connect_timeout(TIMEOUT).keepalives_idle(Duration::from_secs(60));
    Ok(config)
}

/// Connects and takes the one-process lock (in shared mode for a replica) on that
/// connection, watched for its end (which ends the lock).
async fn take(config: tokio_postgres::Config, database: String, shared: bool) -> StoreResult<Owner> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| unreachable(&database, &e))?;
    let lost = Arc::new(AtomicBool::new(false));
    let watch = lost.clone();
    tokio::spawn(async move {
        let _ = connection.await;
        watch.store(true, Ordering::SeqCst);
    });
    let try_lock = if shared { "SELECT pg_try_advisory_lock_shared($1)" } else { "SELECT pg_try_advisory_lock($1)" };
    let row = client.query_one(try_lock, &[&OWNER_LOCK]).await.map_err(pg)?;
    if !row.get::<_, bool>(0) {
        return Err(if shared {
            StoreError::DatabaseHeldAlone { database }
        } else {
            StoreError::DatabaseInUse { database }
        });
    }
    Ok(Owner { client: Some(client), lost, closed: false })
}

fn unreachable(database: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unreachable { database: database.to_string(), cause: cause(e) }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let _ = self.release();
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
    futures::executor::block_on(task)
        .map_err(|e| StoreError::Backend(format!("a database task failed: {}", crate::panics::task_failure(&e))))?
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
