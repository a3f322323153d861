//! `switchboard agent …`: create, list, show and delete agents; read and set memory.

use std::io::Read;

use clap::Subcommand;
use switchboard::agent::{AgentBackend, CreateAgentOptions};

use switchboard::policy::summary::one_line;
use switchboard::store::format_time;

use super::app::{not_found_hint, App};
use super::render::{clip, time};

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

pub async fn run(app: &App, command: AgentCommand) -> anyhow::Result<i32> {
    let backend = &app.backend;
    match command {
        AgentCommand::Create { name, persona, human, system_prompt, model } => {
            let options = CreateAgentOptions { name, persona, human, system_prompt, model, ..Default::default() };
            println!("{}", backend.create_agent(options).await?.agent.id);
        }
        AgentCommand::List => {
            let agents = backend.list_agents().await?;
            if agents.is_empty() {
                println!("No agents yet; the first `switchboard chat` or `prompt` creates one.");
            }
            for a in agents {
                let model = a.model.as_deref().unwrap_or(&app.settings.llm.model);
                println!("{}  {}  model={}  created={}", a.id, a.name, model, time(a.created_at));
            }
        }
        AgentCommand::Show { id } => {
            let details = backend.agent(&id).await.map_err(not_found_hint)?;
            let a = &details.agent;
            println!("id:                   {}", a.id);
            println!("name:                 {}", a.name);
            println!("model:                {}", a.model.as_deref().unwrap_or(&app.settings.llm.model));
            println!("created:              {}", time(a.created_at));
            println!("default conversation: {}", a.default_conversation);
            println!("system prompt:        {}", clip(&serde_json::to_string(&a.system_prompt)?, 100));
            println!("memory blocks:");
            for b in &details.blocks {
                let ro = if b.read_only { ", read-only" } else { "" };
                println!("  {} ({}/{} chars{ro}): {}", b.label, b.value.chars().count(), b.limit, clip(&b.value, 80));
            }
        }
        AgentCommand::Delete { id } => {
            backend.delete_agent(&id).await.map_err(not_found_hint)?;
            println!("deleted {id}");
        }
        AgentCommand::Memory { command: MemoryCommand::Get { id, label } } => {
            println!("{}", backend.memory_block(&id, &label).await.map_err(not_found_hint)?.value);
        }
        AgentCommand::Memory { command: MemoryCommand::Set { id, label, value } } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin().read_to_string(&mut v)?;
                    v.trim_end_matches('\n').to_string()
                }
            };
            let block = backend.set_memory_block(&id, &label, &value).await.map_err(not_found_hint)?;
            println!("{} set ({}/{} chars)", block.label, block.value.chars().count(), block.limit);
        }
        AgentCommand::Memory { command: MemoryCommand::History { id, label } } => {
            let edits = backend.memory_history(&id, &label).await.map_err(not_found_hint)?;
            if edits.is_empty() {
                println!("No recorded edits of {label}.");
            }
            for e in edits {
                println!(
                    "{}  {}  by={} ({})  chat={}\n    now: {}",
                    format_time(e.at),
                    e.how,
                    e.by.as_deref().unwrap_or("-"),
                    e.tier.as_str(),
                    e.chat.as_deref().unwrap_or("-"),
                    one_line(&e.after, 160)
                );
            }
        }
    }
    Ok(0)
}
