//! The `switchboard` command line: argument definitions and dispatch.

mod agents;
mod app;
mod chat;
mod check;
mod conversations;
mod prompt;
mod render;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status for a command that failed in an ordinary way (bad input, model error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for a turn cancelled with Ctrl-C.
pub const EXIT_CANCELLED: i32 = 130;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "One persistent agent, reachable from many chat channels")]
pub struct Cli {
    /// Configuration file [default: $SWITCHBOARD_CONFIG, else ./switchboard.toml when present]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one turn and print the reply
    Prompt {
        #[arg(long)]
        agent: Option<String>,
        /// Continue this conversation instead of starting a fresh one
        #[arg(long)]
        conversation: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output_format: OutputFormat,
        /// The message; `-` reads it from standard input
        text: String,
    },
    /// Talk with the agent in the terminal (one turn per line when stdin is piped)
    Chat {
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, conflicts_with = "new")]
        conversation: Option<String>,
        /// Start a fresh conversation instead of the agent's default one
        #[arg(long)]
        new: bool,
    },
    /// Manage agents and their memory
    Agent {
        #[command(subcommand)]
        command: agents::AgentCommand,
    },
    /// List, export and import conversations
    Conversation {
        #[command(subcommand)]
        command: conversations::ConversationCommand,
    },
    /// Validate the configuration and probe the model endpoint
    Check,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    StreamJson,
}

/// Runs the command; `Ok(code)` is the process exit status.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Prompt { agent, conversation, output_format, text } => {
            let app = app::App::open(config)?;
            prompt::run(&app, agent.as_deref(), conversation.as_deref(), output_format, &text).await
        }
        Command::Chat { agent, conversation, new } => {
            let app = app::App::open(config)?;
            chat::run(&app, agent.as_deref(), conversation.as_deref(), new).await
        }
        Command::Agent { command } => agents::run(&app::App::open(config)?, command).await,
        Command::Conversation { command } => conversations::run(&app::App::open(config)?, command).await,
        Command::Check => check::run(config).await,
    }
}
