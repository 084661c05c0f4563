//! The Kippu platform: configuration and wiring of the adapters. The binary
//! (`kippu dev`) and the end-to-end tests both start [`stack::start`].

pub mod anchor;
pub mod config;
pub mod indexer;
pub mod insurance;
pub mod reconcile;
pub mod seed;
pub mod settle;
pub mod stack;
pub mod validator;

pub use config::Config;
pub use stack::{start, Stack};
