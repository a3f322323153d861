//! Operator commands for a running daemon: when `serve` holds the data directory,
//! the command is sent through its control socket instead.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use switchboard::config::{self, ConfigSource};
use switchboard::control::{self, Answer, Request};
use switchboard::store::StoreError;

/// Sends `request` to the daemon if `error` says one holds the data directory;
/// otherwise (or if no daemon answers) fails with `error` as it was.
pub async fn or_fail(config_path: Option<&Path>, error: anyhow::Error, request: Request) -> anyhow::Result<i32> {
    show(ask(config_path, error, request).await?, None)
}

/// The answer of the process holding the data directory, when `error` says one
/// does; otherwise (or if it does not answer) `error` as it was.
pub async fn ask(config_path: Option<&Path>, error: anyhow::Error, request: Request) -> anyhow::Result<Answer> {
    if !is_locked(&error) {
        return Err(error);
    }
    let settings = config::load(&ConfigSource::from_process(config_path))?.settings;
    match control::call(&settings.data_dir, &request).await {
        Ok(answer) => Ok(answer),
        // Held by something that does not answer on the socket: the error stands.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            Err(error)
        }
        Err(e) => Err(anyhow::anyhow!("the switchboard holding the data directory did not answer ({e})")),
    }
}

/// Exit status of `switchboard status` when no daemon runs (as `systemctl status`).
const EXIT_NOT_RUNNING: i32 = 3;

/// `switchboard status`: asks the running daemon; says plainly when none runs.
pub async fn status(config_path: Option<&Path>) -> anyhow::Result<i32> {
    let settings = config::load(&ConfigSource::from_process(config_path))?.settings;
    match control::call(&settings.data_dir, &Request::Status).await {
        Ok(answer) => show(answer, None),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            println!("switchboard is not running (nothing serves {})", settings.data_dir.display());
            Ok(EXIT_NOT_RUNNING)
        }
        Err(e) => Err(anyhow::anyhow!("the switchboard holding the data directory did not answer ({e})")),
    }
}

/// Prints an answer (its standard output into `output` instead, when given and
/// it succeeded); returns its exit status.
pub fn show(answer: Answer, output: Option<&Path>) -> anyhow::Result<i32> {
    match output.filter(|_| answer.code == 0) {
        Some(path) => {
            std::fs::write(path, &answer.stdout).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => print!("{}", answer.stdout),
    }
    eprint!("{}", answer.stderr);
    std::io::stdout().flush()?;
    Ok(answer.code)
}

/// Whether `error` says another process holds the data directory (or the
/// PostgreSQL database).
pub fn is_locked(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<StoreError>(),
        Some(StoreError::Locked { .. } | StoreError::DatabaseInUse { .. } | StoreError::DatabaseHeldAlone { .. })
    )
}
