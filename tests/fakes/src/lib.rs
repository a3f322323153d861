//! Fake servers on 127.0.0.1 that speak real wire protocols, for end-to-end tests.
//!
//! [`FakeLlm`] is an OpenAI-compatible chat-completions server that serves
//! scripted [`Reply`]s in FIFO order and records every request it receives.
//!
//! [`FakeTelegram`] is a Telegram Bot API server (enough for teloxide) with
//! update injection, failure injection and inspection of what the bot sent.
//!
//! [`FakeDiscord`] is Discord's HTTP API and Gateway WebSocket, with message,
//! slash command and click injection, failures and connection drops.
//!
//! [`FakeSlack`] is Slack's Web API and Socket Mode (or, for an app in HTTP
//! mode, signed POSTs), with mention, DM, slash command and click injection.
//!
//! [`FakeChannel`] is an in-memory `Channel` for gateway tests, and
//! [`RecordingSink`] an `InboundSink` for adapter tests.
//!
//! [`web::serve`] serves web pages (raw HTTP responses) for `WebFetch`.
//!
//! [`postgres::database`] is not a fake: a real PostgreSQL database per test.

pub mod channel;
pub mod discord;
mod http_post;
pub mod llm;
pub mod postgres;
mod server;
mod shared;
pub mod slack;
pub mod telegram;
pub mod web;

#[cfg(test)]
mod test_client;

pub use channel::{FakeChannel, RecordingSink};
pub use discord::FakeDiscord;
pub use llm::{FakeLlm, FakeToolCall, Fallback, Gate, Quirks, RecordedRequest, Reply};
pub use slack::FakeSlack;
pub use telegram::{Call, CallbackAnswer, FakeTelegram, SentMessage};

/// An unused TCP port on 127.0.0.1, for a server the test starts itself (or for
/// an address nothing answers at). It is free when this returns; another
/// process may still take it before the caller binds it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
