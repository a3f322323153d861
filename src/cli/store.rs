//! `switchboard store migrate`: moves a deployment's data between SQLite or sled
//! (in `data_dir`) and PostgreSQL (`store.postgres.url`), with switchboard stopped.

use std::path::Path;

use clap::{Subcommand, ValueEnum};
use switchboard::config::{self, ConfigSource, Settings, StoreKind};
use switchboard::store::copy::copy_all;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy everything from one store into another, empty one, then compare them;
    /// the source is left as it was
    Migrate {
        /// Where the data is now
        #[arg(long, value_enum)]
        from: Kind,
        /// Where it goes (must be empty)
        #[arg(long, value_enum)]
        to: Kind,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Sqlite,
    Sled,
    Postgres,
}

impl Kind {
    fn store_kind(self) -> StoreKind {
        match self {
            Kind::Sqlite => StoreKind::Sqlite,
            Kind::Sled => StoreKind::Sled,
            Kind::Postgres => StoreKind::Postgres,
        }
    }

    fn name(self) -> &'static str {
        self.store_kind().name()
    }
}

pub async fn run(config_path: Option<&Path>, command: StoreCommand) -> anyhow::Result<i32> {
    let StoreCommand::Migrate { from, to } = command;
    if from == to {
        anyhow::bail!("--from and --to name the same store; nothing to do");
    }
    let settings = config::load(&ConfigSource::from_process(config_path))?.settings;
    for kind in [from, to] {
        if kind == Kind::Postgres && settings.store.postgres.url.trim().is_empty() {
            anyhow::bail!("set the database first: SWITCHBOARD_STORE__POSTGRES__URL (store.postgres.url)");
        }
    }
    if from == Kind::Sled && !settings.data_dir.join("db").exists() {
        anyhow::bail!("there is no sled store in {} to migrate", settings.data_dir.display());
    }
    if from == Kind::Sqlite && !settings.data_dir.join(switchboard::store::SQLITE_FILE).exists() {
        anyhow::bail!("there is no SQLite store in {} to migrate", settings.data_dir.display());
    }
    let copied = tokio::task::spawn_blocking(move || copy_between(&settings, from, to)).await??;
    println!("Copied and compared: {copied}.");
    println!(
        "Now set [store] kind = \"{0}\" (or SWITCHBOARD_STORE__KIND={0}) and start switchboard; \
         the {1} store was left as it was.",
        to.name(),
        from.name()
    );
    Ok(0)
}

/// The file or directory an embedded store keeps in `data_dir`.
fn embedded_path(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Sqlite => Some(switchboard::store::SQLITE_FILE),
        Kind::Sled => Some("db"),
        Kind::Postgres => None,
    }
}

/// Copies `from` into `to`. Two stores in the one data directory cannot both
/// hold its lock: the new one is then made in a directory inside it and moved
/// into place once both are closed.
fn copy_between(settings: &Settings, from: Kind, to: Kind) -> anyhow::Result<switchboard::store::copy::Copied> {
    let (Some(_), Some(target_path)) = (embedded_path(from), embedded_path(to)) else {
        let source = open(settings, from)?;
        let target = open(settings, to)?;
        return Ok(copy_all(&*source, &*target)?);
    };
    // (A log left beside a moved-aside SQLite file would be read into the new one.)
    let taken = |name: &std::ffi::OsStr| name.to_string_lossy().starts_with(target_path);
    if std::fs::read_dir(&settings.data_dir)?.filter_map(Result::ok).any(|e| taken(&e.file_name())) {
        anyhow::bail!(
            "{} already holds a {} store ({target_path}*); move all of it aside first",
            settings.data_dir.display(),
            to.name()
        );
    }
    let staging = settings.data_dir.join(".migrating");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    // The source holds the data directory until the new store is in place.
    let source = open(settings, from)?;
    let copied = {
        let mut beside = settings.clone();
        beside.data_dir = staging.clone();
        let target = open(&beside, to)?;
        copy_all(&*source, &*target)?
        // Closed here: SQLite folds its log into the file and removes it.
    };
    if std::fs::read_dir(&staging)?.filter_map(Result::ok).any(|e| {
        let name = e.file_name();
        name != "LOCK" && name != target_path
    }) {
        anyhow::bail!("the new store in {} was not closed cleanly; run the migration again", staging.display());
    }
    std::fs::rename(staging.join(target_path), settings.data_dir.join(target_path))?;
    std::fs::File::open(&settings.data_dir)?.sync_all()?;
    std::fs::remove_dir_all(&staging)?;
    drop(source);
    Ok(copied)
}

fn open(
    settings: &Settings,
    kind: Kind,
) -> switchboard::store::StoreResult<std::sync::Arc<dyn switchboard::store::Store>> {
    let mut settings = settings.clone();
    settings.store.kind = kind.store_kind();
    // Taken for itself: never beside running replicas.
    settings.store.postgres.replicas.enabled = false;
    switchboard::store::open(&settings)
}
