//! `switchboard conversation …`: list, export (JSONL) and import conversations.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use switchboard::admin::AdminRequest;

#[derive(Subcommand)]
pub enum ConversationCommand {
    List {
        #[arg(long)]
        agent: Option<String>,
    },
    /// Write a conversation as JSONL, one {"_v":2,"parent_id":…,"msg":{…}} a line
    Export {
        id: String,
        /// Write here instead of standard output
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Create a new conversation from an export
    Import {
        file: PathBuf,
        /// The agent to own it [default: the default agent]
        #[arg(long)]
        agent: Option<String>,
    },
}

/// The command as a request (an import carries its file's text), and where an
/// export goes when not to standard output.
pub fn request(command: ConversationCommand) -> anyhow::Result<(AdminRequest, Option<PathBuf>)> {
    Ok(match command {
        ConversationCommand::List { agent } => (AdminRequest::ConversationList { agent }, None),
        ConversationCommand::Export { id, output } => (AdminRequest::ConversationExport { id }, output),
        ConversationCommand::Import { file, agent } => {
            let jsonl = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            (AdminRequest::ConversationImport { agent, jsonl }, None)
        }
    })
}
