//! The `switchboard` command line: argument definitions and dispatch.

mod agents;
mod app;
mod approvals;
mod chat;
mod check;
mod conversations;
pub mod engine;
mod engine_host;
mod grants;
pub mod logging;
mod pairing;
mod prompt;
mod remote;
mod render;
mod serve;
mod store;
mod terminal;
mod turn_view;

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
        /// Allow tool calls that need approval (once each) instead of denying them
        #[arg(long)]
        yes: bool,
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
        /// With piped input: allow tool calls that need approval (once each) instead of denying them
        #[arg(long)]
        yes: bool,
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
    /// List, decide and audit tool approvals
    Approvals {
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// "Always allow here" grants: list them, revoke one
    Grants {
        #[command(subcommand)]
        command: grants::GrantsCommand,
    },
    /// Validate the configuration and probe the model endpoint
    Check,
    /// Run the daemon: answer chats on every configured channel
    Serve,
    /// The running daemon's health: each channel, its queues, pending approvals, the outbox
    Status,
    /// Pairing requests from people the bot does not know yet
    Pairing {
        #[command(subcommand)]
        command: pairing::PairingCommand,
    },
    /// Move the data between stores (sled in data_dir, PostgreSQL), switchboard stopped
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// The background engine SDK sessions share (started by them, not by hand)
    #[command(hide = true)]
    EngineHost,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    StreamJson,
}

/// Runs the command; `Ok(code)` is the process exit status.
/// The daemon logs its activity; one-shot commands only their errors.
pub fn default_log_filter(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Serve | Command::EngineHost => "info,sled=off",
        _ => "error,sled=off",
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Prompt { agent, conversation, output_format, yes, text } => {
            prompt::run(config, agent.as_deref(), conversation.as_deref(), output_format, yes, &text).await
        }
        Command::Chat { agent, conversation, new, yes } => {
            chat::run(config, agent.as_deref(), conversation.as_deref(), new, yes).await
        }
        Command::Agent { command } => admin(config, agents::request(command)?, None).await,
        Command::Conversation { command } => {
            let (request, output) = conversations::request(command)?;
            admin(config, request, output.as_deref()).await
        }
        Command::Approvals { command } => match app::App::open(config).await {
            Ok(app) => approvals::run(&app, command).await,
            Err(e) => remote::or_fail(config, e, approvals::request(&command)).await,
        },
        Command::Grants { command } => match app::App::open(config).await {
            Ok(app) => grants::run(&app, command).await,
            Err(e) => remote::or_fail(config, e, grants::request(&command)).await,
        },
        Command::Check => check::run(config).await,
        Command::Status => remote::status(config).await,
        Command::Serve => serve::run(app::App::open_serving(config).await?).await,
        Command::EngineHost => engine_host::run(app::App::open(config).await?).await,
        Command::Store { command } => store::run(config, command).await,
        Command::Pairing { command } => match app::App::open(config).await {
            Ok(app) => pairing::run(&app, command).await,
            Err(e) => remote::or_fail(config, e, pairing::request(&command)).await,
        },
    }
}

/// An agent or conversation command: answered here when this process can open the
/// store (without serving others: it is quick), else by the switchboard that holds it.
async fn admin(
    config: Option<&std::path::Path>,
    request: switchboard::admin::AdminRequest,
    output: Option<&std::path::Path>,
) -> anyhow::Result<i32> {
    let answer = match app::App::open(config).await {
        // Quick: others (an SDK process) wait until the store is free again.
        Ok(app) => switchboard::admin::answer(&*app.backend, &app.settings.llm.model, request).await,
        Err(e) => remote::ask(config, e, switchboard::control::Request::Admin { request }).await?,
    };
    remote::show(answer, output)
}
