//! Kippu's chain adapter. Bindings come from the committed, trimmed Foundry
//! artifacts in `contracts/abi/`, so building the Rust side needs no Node or
//! solc; `make test` fails when those artifacts are stale.

pub mod anvil;
pub mod bindings;
mod client;
mod decode;

pub use client::{
    voucher_category, BundleSpec, Chain, ChainConfig, Deployment, InsuranceTerms, OperatorSpec, ProductCover,
    ProductSpec, SettlementState, Validity,
};
pub use decode::decode_log;

/// Chain adapter errors.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached or answered with an error.
    #[error("rpc error: {0}")]
    Rpc(String),
    /// A contract call reverted; the text is the decoded custom error when known.
    #[error("contract reverted: {0}")]
    Revert(String),
    /// The transaction was mined but failed.
    #[error("transaction {0} failed")]
    TxFailed(String),
    /// The local node could not be started.
    #[error("anvil: {0}")]
    Anvil(String),
    /// Invalid configuration (bad key, bad URL).
    #[error("chain configuration: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ChainError>;
