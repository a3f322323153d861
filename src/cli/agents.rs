//! `switchboard agent …`: create, list, show and delete agents; read and set memory.

use std::io::Read;

use clap::Subcommand;
use switchboard::admin::AdminRequest;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create an agent (settings not given come from [agent])
    Create {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        persona: Option<String>,
        #[arg(long)]
        human: Option<String>,
        /// A preset (default, minimal) or custom text
        #[arg(long)]
        system_prompt: Option<String>,
        /// A model for this agent instead of [llm] model
        #[arg(long)]
        model: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    /// Delete an agent with its memory and conversations
    Delete {
        id: String,
    },
    /// Read or set a memory block
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
}

#[derive(Subcommand)]
pub enum MemoryCommand {
    Get {
        id: String,
        label: String,
    },
    /// Set a block's value (read from standard input when VALUE is left out)
    Set {
        id: String,
        label: String,
        value: Option<String>,
    },
    /// Every edit of a block: when, by whom (and their tier), from which chat
    History {
        id: String,
        label: String,
    },
}

/// The command as a request; `memory set` without a value reads it from stdin here.
pub fn request(command: AgentCommand) -> anyhow::Result<AdminRequest> {
    Ok(match command {
        AgentCommand::Create { name, persona, human, system_prompt, model } => {
            AdminRequest::AgentCreate { name, persona, human, system_prompt, model }
        }
        AgentCommand::List => AdminRequest::AgentList,
        AgentCommand::Show { id } => AdminRequest::AgentShow { id },
        AgentCommand::Delete { id } => AdminRequest::AgentDelete { id },
        AgentCommand::Memory { command: MemoryCommand::Get { id, label } } => AdminRequest::MemoryGet { id, label },
        AgentCommand::Memory { command: MemoryCommand::Set { id, label, value } } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin().read_to_string(&mut v)?;
                    v.trim_end_matches('\n').to_string()
                }
            };
            AdminRequest::MemorySet { id, label, value }
        }
        AgentCommand::Memory { command: MemoryCommand::History { id, label } } => {
            AdminRequest::MemoryHistory { id, label }
        }
    })
}
