//! Kippu's domain core: the rules of passes, gate verdicts, bundle pricing and
//! delay cover. Nothing here does IO, so every rule is testable in isolation and
//! the same code runs in the validator service, the gate simulator (offline
//! mode) and the web app.

pub mod audit;
pub mod card;
pub mod contract_error;
pub mod device_pass;
pub mod events;
pub mod merkle;
pub mod model;
pub mod money;
pub mod outbox;
pub mod pass;
pub mod pricing;
pub mod settlement;
pub mod snapshot;
pub mod staff;
pub mod throttle;
pub mod topics;
pub mod validation;
pub mod verdict;
pub mod voucher;

pub use contract_error::ContractRejection;
pub use pass::{Pass, PassError, PASS_WINDOW_SECS};
pub use validation::{GateInfo, PeerEntry, TicketState, Validator, ValidatorConfig};
pub use verdict::{DenyReason, ScanRequest, TripRef, VerdictMessage};
