//! switchboard: one persistent agent, reachable from many chat channels.

pub mod agent;
pub mod config;
pub mod control;
pub mod gateway;
pub mod policy;
pub mod store;
