//! Kippu's application core: the use cases the web layer and the background jobs call, over
//! ports — traits for the store, the chain, payments, the notifier and the clock — that the
//! adapters implement. It depends on no adapter: `kippu-store` and `kippu-chain` implement
//! [`ports::Store`], [`ports::Chain`] and [`ports::Clearing`]; the binary wires them together;
//! tests use in-memory ones.
//!
//! Each use case is a function over the ports with a typed input, a typed result and an error
//! enum saying every way it can refuse, so an HTTP handler only parses, authorizes, calls one
//! use case and renders (mapping each error to its status and message), and a background job
//! calls the same function.
//!
//! | use case | module |
//! |---|---|
//! | sign up, sign in (password, wallet), the custodial key, revoke the key, erase the account | [`accounts`] |
//! | certify / revoke a phone's device key | [`devices`] |
//! | open a top-up, credit a completed payment | [`topup`] |
//! | buy a plan | [`purchase`] |
//! | refund a ticket, bind / unbind a card | [`tickets`] |
//! | issue / revoke a concession credential | [`credentials`] |
//! | import a timetable | [`timetable`] |
//! | redeem a voucher | [`vouchers`] |
//! | close a clearing period | [`period`] |
//! | organisations, staff (invite, sign in, roles), API tokens | [`staff`] |
//! | the chain-write outbox at a glance (the admin page) | [`chain_writes`] |

pub mod accounts;
pub mod chain_writes;
pub mod credentials;
pub mod devices;
pub mod insurance;
pub mod period;
pub mod ports;
pub mod purchase;
pub mod staff;
pub mod tickets;
pub mod timetable;
pub mod topup;
pub mod vouchers;

pub use ports::{ChainFailure, PortError, PortResult};
