//! Traveler identity for Kippu.
//!
//! Travelers are identified by `did:pkh:eip155:<chainId>:<address>` (a CAIP-10
//! account wrapped in a DID). Sign-in is a DID challenge-response: the server
//! issues a [`Challenge`], the traveler signs [`Challenge::message`] with
//! EIP-191 `personal_sign`, and [`verify_did_auth`] resolves the DID document
//! with `ssi` and checks the signature against the account it names.
//!
//! Private keys never travel over the network. Self-custodied travelers sign
//! in their own wallet; custodial/demo travelers' keys stay in the server-side
//! [`Keystore`], encrypted at rest, and are only ever used in-process through
//! [`sign_challenge`].

mod auth;
mod did;
mod error;
mod keystore;

pub use auth::{
    sign_challenge, verify_did_auth, Challenge, ChallengeBook, DEFAULT_CHALLENGE_TTL_SECS,
    DEFAULT_MAX_OUTSTANDING_CHALLENGES,
};
pub use did::{did_pkh, normalize_did_pkh, parse_did_pkh};
pub use error::{IdentityError, Result};
pub use keystore::{deterministic_demo_key, Keystore, SealedKey};

/// Re-exported so callers name the same types this crate's API uses.
pub use alloy::primitives::Address;
/// Re-exported so callers name the same signer type this crate's API uses.
pub use alloy::signers::local::PrivateKeySigner;
