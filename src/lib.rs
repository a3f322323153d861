//! switchboard: one persistent agent, reachable from many chat channels.

pub mod admin;
pub mod agent;
pub mod channels;
pub mod config;
pub mod console;
pub mod control;
pub mod daemon;
pub mod gateway;
pub mod heap;
pub mod keyed;
pub mod metrics;
pub mod notify;
pub mod panics;
pub mod policy;
pub mod server;
pub mod store;
pub mod wire;
