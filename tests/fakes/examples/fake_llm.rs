//! Runs the fake OpenAI-compatible server on 127.0.0.1 for manual tries and for the
//! Letta Code SDK tests. Prints its base URL, then serves until Ctrl-C or until its
//! standard input closes.
//!
//! cargo run -p switchboard-fakes --example fake_llm [CHUNK_DELAY_MS] [echo|agent]
//!
//! `echo` (the default) echoes the last user message in chunks; `agent` is the
//! fake's tiny agent (`RUN <command>` asks for a Bash call, `slow` streams in ten
//! chunks; see `Fallback::Agent`).

use std::time::Duration;

use switchboard_fakes::{FakeLlm, Fallback};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let delay_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let fallback = match args.next().as_deref() {
        None | Some("echo") => Fallback::Echo,
        Some("agent") => Fallback::Agent,
        Some(other) => {
            eprintln!("unknown mode {other:?}: echo or agent");
            std::process::exit(2);
        }
    };
    let llm = FakeLlm::start().await;
    llm.set_fallback(fallback);
    llm.set_chunk_delay(Duration::from_millis(delay_ms));
    println!("{}", llm.base_url());
    // Ends with its parent: stdin closes when the process that started it exits.
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
}
