//! `switchboard grants list|revoke`: the "always allow here" grants in force, and
//! taking one back. While `serve` runs, the same commands go through its socket.

use clap::Subcommand;
use switchboard::agent::AgentBackend;
use switchboard::control::{render_grants, Request};

use super::app::App;
use super::EXIT_FAILURE;

#[derive(Subcommand)]
pub enum GrantsCommand {
    /// Grants in force (of one chat with --chat, e.g. telegram:-100123)
    List {
        #[arg(long)]
        chat: Option<String>,
    },
    /// Take a grant back: its tool asks again
    Revoke { id: String },
}

/// The same command for a running daemon (which holds the data directory).
pub fn request(command: &GrantsCommand) -> Request {
    match command {
        GrantsCommand::List { chat } => Request::GrantsList { chat: chat.clone() },
        GrantsCommand::Revoke { id } => Request::GrantsRevoke { id: id.clone() },
    }
}

pub async fn run(app: &App, command: GrantsCommand) -> anyhow::Result<i32> {
    match command {
        GrantsCommand::List { chat } => {
            print!("{}", render_grants(&app.backend.grants(chat.as_deref()).await?));
            Ok(0)
        }
        GrantsCommand::Revoke { id } => {
            if app.backend.revoke_grant(&id).await? {
                println!("revoked {id}");
                Ok(0)
            } else {
                eprintln!("error: there is no grant {id}; see `switchboard grants list`");
                Ok(EXIT_FAILURE)
            }
        }
    }
}
