//! The Kippu platform: configuration, the production runtime (`kippu serve`, `kippu init` and
//! the operators' commands) and, in a `dev` build only, the demo (`kippu dev`). The binary and
//! the end-to-end tests both start [`stack::start`].

pub mod anchor;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod clock;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod gates;
pub mod indexer;
pub mod init;
pub mod insurance;
pub mod jobs;
pub mod ops;
pub mod platform;
pub mod reconcile;
pub mod secrets;
pub mod serve;
pub mod settle;
pub mod snapshots;
pub mod stack;
pub mod staff;
pub mod telemetry;
pub mod validator;
pub mod validator_process;
pub mod wiring;

pub use config::Config;
#[cfg(feature = "dev")]
pub use dev::start;
pub use stack::Stack;
