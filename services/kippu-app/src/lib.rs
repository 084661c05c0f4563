//! Kippu's application core: the use cases the web layer and the background jobs call, over
//! ports — traits for the store, the chain, payments and the clock — that the adapters
//! implement. It depends on no adapter: `kippu-store` and `kippu-chain` implement
//! [`ports::Store`] and [`ports::Chain`]; the binary wires them together; tests use in-memory
//! ones (`kippu-testkit`).

pub mod ports;

pub use ports::{ChainFailure, PortError, PortResult};
