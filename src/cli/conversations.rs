//! `switchboard conversation …`: list, export (JSONL) and import conversations.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use switchboard::agent::transcript::{parse_jsonl, to_jsonl};
use switchboard::agent::AgentBackend;

use super::app::{not_found_hint, App};
use super::render::time;

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

pub async fn run(app: &App, command: ConversationCommand) -> anyhow::Result<i32> {
    let backend = &app.backend;
    match command {
        ConversationCommand::List { agent } => {
            let conversations = backend.list_conversations(agent.as_deref()).await.map_err(not_found_hint)?;
            if conversations.is_empty() {
                println!("No conversations.");
            }
            for c in conversations {
                println!("{}  {}  created={}  updated={}", c.id, c.agent_id, time(c.created_at), time(c.updated_at));
            }
        }
        ConversationCommand::Export { id, output } => {
            let text = to_jsonl(&backend.export_conversation(&id).await.map_err(not_found_hint)?);
            match output {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{text}"),
            }
        }
        ConversationCommand::Import { file, agent } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let entries = parse_jsonl(&text)?;
            let agent_id = app.agent_id(agent.as_deref()).await?;
            let count = entries.len();
            let conversation = backend.import_conversation(&agent_id, entries).await?;
            eprintln!("imported {count} entries");
            println!("{}", conversation.id);
        }
    }
    Ok(0)
}
