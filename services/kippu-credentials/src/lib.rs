//! Concession credentials for Kippu.
//!
//! Issuers (a university, a welfare office) are `did:web` identities that
//! Kippu hosts; they issue W3C Verifiable Credentials 2.0 with an
//! `eddsa-rdfc-2022` Data Integrity proof to a traveler's `did:pkh`, and
//! revoke them through a Bitstring Status List that Kippu publishes. At
//! purchase the traveler presents them in a Verifiable Presentation signed
//! by their account key and bound to a fresh challenge. Verification checks
//! the trust list, validity dates, the issuer's signature and revocation,
//! each failure with its own [`CredentialError`].
//!
//! Built on `ssi` (SpruceID): JSON-LD canonicalization (RDFC-1.0), the
//! cryptosuites, DID methods and the status list codec are theirs.

mod concession;
mod didweb;
mod error;
mod fetch;
mod keys;
mod resolver;

pub use concession::{
    Concession, Credentials, NewConcession, StatusEntry, StatusSource, TrustList, VerifiedConcession,
    VerifiedPresentation, CONCESSION_CONTEXT, CONCESSION_CONTEXT_DOCUMENT, CREDENTIALS_V2, STATUS_LIST_LEN,
};
pub use didweb::{account_document, did_web, did_web_path, issuer_document};
pub use error::{CredentialError, Result};
pub use fetch::{non_public_range, FetchError, FetchPolicy};
pub use keys::{ed25519_multibase, IssuerKey};
pub use resolver::{Resolver, Stats as ResolverStats};
