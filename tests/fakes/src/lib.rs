//! Fake servers on 127.0.0.1 that speak real wire protocols, for end-to-end tests.
//!
//! [`FakeLlm`] is an OpenAI-compatible chat-completions server that serves
//! scripted [`Reply`]s in FIFO order and records every request it receives.

pub mod llm;

pub use llm::{FakeLlm, FakeToolCall, Fallback, RecordedRequest, Reply};
