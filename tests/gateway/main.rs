//! The gateway's own tests: the real daemon in this process against the in-memory
//! fake channel (and, where two channels meet, the fake Telegram too). No platform
//! wire formats here; those are the channel crates' tests.

mod harness;

mod access;
mod approvals;
mod busy;
mod channels;
mod commands;
mod delivery;
mod durability;
mod recovery;
