//! Where configuration comes from: an explicit path, `$SWITCHBOARD_CONFIG`, or
//! `./switchboard.toml` when present; plus the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The raw inputs of a load, separated from the process so tests can supply them.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The config file to read; `None` means defaults plus environment only.
    pub file: Option<PathBuf>,
    /// Whether the file was named explicitly (a missing explicit file is an error).
    pub file_required: bool,
    /// `SWITCHBOARD_*` variables (full names).
    pub env: HashMap<String, String>,
}

impl ConfigSource {
    /// Resolve the file from `--config`, then `$SWITCHBOARD_CONFIG`, then
    /// `./switchboard.toml` if it exists; take `SWITCHBOARD_*` from the process.
    pub fn from_process(cli_path: Option<&Path>) -> Self {
        let env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD_")).collect();
        let (file, file_required) = match cli_path {
            Some(p) => (Some(p.to_path_buf()), true),
            None => match env.get("SWITCHBOARD_CONFIG").filter(|v| !v.is_empty()) {
                Some(p) => (Some(PathBuf::from(p)), true),
                None => {
                    let local = PathBuf::from("switchboard.toml");
                    if local.is_file() {
                        (Some(local), false)
                    } else {
                        (None, false)
                    }
                }
            },
        };
        ConfigSource { file, file_required, env }
    }
}
