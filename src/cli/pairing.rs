//! `switchboard pairing list|approve`: people waiting for access through pairing.
//! (While `serve` runs it holds the data directory; then admins use /pair CODE.)

use clap::Subcommand;
use switchboard::gateway::Access;

use super::app::App;
use super::render::time;
use super::EXIT_FAILURE;

#[derive(Subcommand)]
pub enum PairingCommand {
    /// Pending pairing requests of a channel
    List {
        #[arg(default_value = "telegram")]
        channel: String,
    },
    /// Let the person with this code talk to the agent
    Approve { channel: String, code: String },
}

pub async fn run(app: &App, command: PairingCommand) -> anyhow::Result<i32> {
    let access = Access::new(app.store.clone());
    match command {
        PairingCommand::List { channel } => {
            let pending = access.pending(&channel).await?;
            if pending.is_empty() {
                println!("No pending pairing requests on {channel}.");
            }
            for r in pending {
                println!("{}  {}  {}  requested={}", r.code, r.user, r.name, time(r.created_at));
            }
            Ok(0)
        }
        PairingCommand::Approve { channel, code } => match access.approve(&channel, &code, "console").await? {
            Some(r) => {
                println!("paired {} ({})", r.name, r.user);
                Ok(0)
            }
            None => {
                eprintln!("error: {code} is not a pending pairing code on {channel} (or it expired)");
                Ok(EXIT_FAILURE)
            }
        },
    }
}
