//! `switchboard pairing list|approve`: people waiting for access through pairing.
//! While `serve` runs, the same commands go to it through its control socket.

use clap::Subcommand;
use switchboard::control::{render_pairing, Request};
use switchboard::gateway::Access;

use super::app::App;
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

/// The same command for a running daemon (which holds the data directory).
pub fn request(command: &PairingCommand) -> Request {
    match command {
        PairingCommand::List { channel } => Request::PairingList { channel: channel.clone() },
        PairingCommand::Approve { channel, code } => {
            Request::PairingApprove { channel: channel.clone(), code: code.clone() }
        }
    }
}

pub async fn run(app: &App, command: PairingCommand) -> anyhow::Result<i32> {
    let access = Access::new(app.store.clone());
    match command {
        PairingCommand::List { channel } => {
            print!("{}", render_pairing(&access.pending(&channel).await?, &channel));
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
