//! `switchboard store migrate`: moves a deployment's data between sled (in
//! `data_dir`) and PostgreSQL (`store.postgres.url`), with switchboard stopped.

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
    Sled,
    Postgres,
}

impl Kind {
    fn store_kind(self) -> StoreKind {
        match self {
            Kind::Sled => StoreKind::Sled,
            Kind::Postgres => StoreKind::Postgres,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Sled => "sled",
            Kind::Postgres => "postgres",
        }
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
    let copied = tokio::task::spawn_blocking(move || {
        let source = open(&settings, from)?;
        let target = open(&settings, to)?;
        copy_all(&*source, &*target)
    })
    .await??;
    println!("Copied and compared: {copied}.");
    println!(
        "Now set [store] kind = \"{0}\" (or SWITCHBOARD_STORE__KIND={0}) and start switchboard; \
         the {1} store was left as it was.",
        to.name(),
        from.name()
    );
    Ok(0)
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
