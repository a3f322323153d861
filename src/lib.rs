//! switchboard: one persistent agent, reachable from many chat channels.

pub mod agent;
pub mod config;
pub mod policy;
pub mod store;
