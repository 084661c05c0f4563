//! Kippu's chain adapter. Bindings come from the committed, trimmed Foundry
//! artifacts in `contracts/abi/`, so building the Rust side needs no Node or
//! solc; `make test` fails when those artifacts are stale.
//!
//! Each transaction is sent from the key of its role ([`HotKeys`]); a production
//! deployment ([`deploy`]) leaves the deploying key with no role and records the
//! role holders and the contracts' code hashes, which [`verify_deployment`] checks
//! before [`connect`] is used.

use alloy::primitives::{Address, Bytes};

pub mod anvil;
pub mod bindings;
mod client;
mod decode;
mod deploy;
pub mod hardhat;
mod keys;
mod outbox;
mod port;
mod rejection;

pub use client::{
    connect, voucher_category, BundleSpec, Chain, ChainConfig, InsuranceTerms, OperatorSpec, ProductCover, ProductSpec,
    RideRefusal, RidesOutcome, SettlementState, Validity, MAX_RIDES_PER_TX,
};
pub use decode::decode_log;
pub use deploy::{deploy, deploy_single_key, verify_deployment, CodeHashes, Deployment};
pub use keys::{HotKeys, RoleHolders};
/// Why a contract refused a call ([`ChainError::Rejected`]), re-exported for callers.
pub use kippu_domain::ContractRejection;
pub use outbox::{Outbox, OutboxStats, INCLUSION_WAIT, SENDER_LEASE, SENDER_LEASE_SECS};

/// Chain adapter errors.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached or answered with an error.
    #[error("rpc error: {0}")]
    Rpc(String),
    /// A contract refused the call with one of the Kippu contracts' errors (decoded from the
    /// revert data; callers match on it, never on text). `Display` names the Solidity error.
    #[error("contract refused: {0}")]
    Rejected(ContractRejection),
    /// A contract call reverted with data no Kippu contract's error decodes: a `require`
    /// message, a panic, or no data at all.
    #[error("contract reverted: {}", rejection::describe_undecoded(.data))]
    Reverted {
        /// The raw revert data.
        data: Bytes,
    },
    /// The write is recorded and being sent (dropped, re-sent, or the chain is slow): it is not
    /// in a block yet, and will be sent until it is. Not a refusal.
    #[error("chain write {0} is pending: recorded, not yet in a block")]
    Pending(String),
    /// The outbox's database failed.
    #[error("chain-write outbox: {0}")]
    Outbox(String),
    /// The transaction was mined but failed.
    #[error("transaction {0} failed")]
    TxFailed(String),
    /// The local node could not be started.
    #[error("anvil: {0}")]
    Anvil(String),
    /// Invalid configuration (bad key, bad URL).
    #[error("chain configuration: {0}")]
    Config(String),
    /// The node serves another chain than the deployment record names.
    #[error("deployment is on chain {expected}, the node serves chain {found}")]
    WrongChain {
        /// Chain id of the deployment record.
        expected: u64,
        /// Chain id the node reports.
        found: u64,
    },
    /// The runtime code at a recorded address is not the code recorded at deployment.
    #[error("code of {contract} at {address} differs from the deployment record")]
    CodeMismatch {
        /// Which contract (`fare`, `ticket`, `market`, `insurance`, `clearing`).
        contract: &'static str,
        /// Its recorded address.
        address: Address,
    },
    /// There is no code at a recorded address (wrong node, or a chain reset since).
    #[error("no code for {contract} at {address}")]
    NoCode {
        /// Which contract (`fare`, `ticket`, `market`, `insurance`, `clearing`).
        contract: &'static str,
        /// Its recorded address.
        address: Address,
    },
    /// A transaction needs a role whose key this process does not hold (admin-only
    /// governance on a connection with hot keys only).
    #[error("sending as {role} needs the key of {address}, which this process does not hold")]
    MissingKey {
        /// The role (`admin`).
        role: &'static str,
        /// The address holding it.
        address: Address,
    },
    /// A ride batch for [`Chain::record_rides`] must hold 1 to `max` rides.
    #[error("a ride batch holds 1 to {max} rides, not {rides}")]
    InvalidRideBatch {
        /// Rides in the batch.
        rides: usize,
        /// [`MAX_RIDES_PER_TX`].
        max: usize,
    },
}

impl ChainError {
    /// The contract's refusal, when this is one.
    pub fn rejection(&self) -> Option<&ContractRejection> {
        match self {
            Self::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ChainError>;
