//! Operator commands for a running daemon: when `serve` holds the data directory,
//! the command is sent through its control socket instead.

use std::io::Write;
use std::path::Path;

use switchboard::config::{self, ConfigSource};
use switchboard::control::{self, Request};
use switchboard::store::StoreError;

/// Sends `request` to the daemon if `error` says one holds the data directory;
/// otherwise (or if no daemon answers) fails with `error` as it was.
pub async fn or_fail(config_path: Option<&Path>, error: anyhow::Error, request: Request) -> anyhow::Result<i32> {
    if !matches!(error.downcast_ref::<StoreError>(), Some(StoreError::Locked { .. })) {
        return Err(error);
    }
    let settings = config::load(&ConfigSource::from_process(config_path))?.settings;
    match control::call(&settings.data_dir, &request).await {
        Ok(answer) => {
            print!("{}", answer.stdout);
            eprint!("{}", answer.stderr);
            std::io::stdout().flush()?;
            Ok(answer.code)
        }
        // Held by something that is not a daemon (an open `chat`, say).
        Err(_) => Err(error),
    }
}
