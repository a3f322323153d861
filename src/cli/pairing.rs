//! `switchboard pairing list|approve`: people waiting for access through pairing.
//! While `serve` runs, the same commands go to it through its control socket.

use clap::Subcommand;
use switchboard::channels::REGISTERED;
use switchboard::control::{render_pairing, Request};
use switchboard::gateway::Pairing;
use switchboard::policy::approvals::OPERATOR;

use super::app::App;
use super::EXIT_FAILURE;

#[derive(Subcommand)]
pub enum PairingCommand {
    /// Pending pairing requests of a channel (of every channel when left out)
    List { channel: Option<String> },
    /// Let the person with this code talk to the agent
    Approve { channel: String, code: String },
    /// Refuse a pending code
    Reject { channel: String, code: String },
    /// Unpair someone (their channel-scoped id, e.g. telegram:42): a stranger again
    Revoke { user: String },
}

/// The same command for a running daemon (which holds the data directory).
pub fn request(command: &PairingCommand) -> Request {
    match command {
        PairingCommand::List { channel } => Request::PairingList { channel: channel.clone() },
        PairingCommand::Approve { channel, code } => {
            Request::PairingApprove { channel: channel.clone(), code: code.clone() }
        }
        PairingCommand::Reject { channel, code } => {
            Request::PairingReject { channel: channel.clone(), code: code.clone() }
        }
        PairingCommand::Revoke { user } => Request::PairingRevoke { user: user.clone() },
    }
}

pub async fn run(app: &App, command: PairingCommand) -> anyhow::Result<i32> {
    let pairing = Pairing::new(app.store.clone());
    match command {
        PairingCommand::List { channel } => {
            for name in channels(channel) {
                print!("{}", render_pairing(&pairing.pending(&name).await?, &name));
            }
            Ok(0)
        }
        PairingCommand::Approve { channel, code } => match pairing.approve(&channel, &code, OPERATOR).await? {
            Some(r) => {
                println!("paired {} ({})", r.name, r.user);
                Ok(0)
            }
            None => {
                eprintln!("error: {code} is not a pending pairing code on {channel} (or it expired)");
                Ok(EXIT_FAILURE)
            }
        },
        PairingCommand::Reject { channel, code } => match pairing.reject(&channel, &code).await? {
            Some(r) => {
                println!("rejected the code of {} ({})", r.name, r.user);
                Ok(0)
            }
            None => {
                eprintln!("error: {code} is not a pending pairing code on {channel}");
                Ok(EXIT_FAILURE)
            }
        },
        PairingCommand::Revoke { user } => {
            if pairing.revoke(&user).await? {
                println!("unpaired {user}");
                Ok(0)
            } else {
                eprintln!("error: {user} is not paired (ids look like telegram:42)");
                Ok(EXIT_FAILURE)
            }
        }
    }
}

/// The named channel, or every registered one.
pub fn channels(named: Option<String>) -> Vec<String> {
    match named {
        Some(name) => vec![name],
        None => REGISTERED.iter().map(|c| c.name.to_string()).collect(),
    }
}
