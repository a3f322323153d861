//! The `switchboard` binary: parses the command line, sets up logging, and turns any
//! failure into one human line on stderr and a non-zero exit status.

mod allocator;
mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    allocator::tune();
    // The Letta Code SDK starts switchboard with its own flags and no subcommand.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if switchboard::wire::args::is_engine_invocation(&args) {
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")))
            .with_writer(std::io::stderr)
            .init();
        switchboard::panics::log_panics();
        let code = match tokio::runtime::Runtime::new() {
            Ok(runtime) => {
                let code = runtime.block_on(cli::engine::run(args));
                runtime.shutdown_background();
                code
            }
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                cli::EXIT_FAILURE
            }
        };
        std::process::exit(code);
    }
    let cli = cli::Cli::parse();
    // Logs go to stderr so command output stays clean; failures already end in one
    // human line, so only errors are logged unless RUST_LOG asks for more. sled reports
    // a damaged directory itself; our error already says so.
    cli::logging::init(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli::default_log_filter(&cli))),
    );
    switchboard::panics::log_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(cli::EXIT_FAILURE);
        }
    };
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let text = format!("{e:#}");
            if cli::logging::is_json() {
                // A JSON log stays one object a line to its end.
                tracing::error!(error = %text.trim_end(), "exiting after an error");
            } else {
                eprintln!("error: {}", text.trim_end());
            }
            cli::EXIT_FAILURE
        }
    };
    // Do not wait for background tasks (a stuck model request) on the way out.
    runtime.shutdown_background();
    std::process::exit(code);
}
