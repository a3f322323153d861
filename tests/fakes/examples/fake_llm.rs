//! Runs the fake OpenAI-compatible server on 127.0.0.1 for manual tries: it echoes the
//! last user message in chunks. Prints its base URL, then serves until Ctrl-C.
//!
//! cargo run -p switchboard-fakes --example fake_llm [CHUNK_DELAY_MS]

use std::time::Duration;

use switchboard_fakes::{FakeLlm, Fallback};

#[tokio::main]
async fn main() {
    let delay_ms: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let llm = FakeLlm::start().await;
    llm.set_fallback(Fallback::Echo);
    llm.set_chunk_delay(Duration::from_millis(delay_ms));
    println!("{}", llm.base_url());
    let _ = tokio::signal::ctrl_c().await;
}
