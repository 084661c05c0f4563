use alloy::primitives::Address;

/// Everything that can go wrong while identifying a traveler.
///
/// Variants are deliberately specific so the web layer can map them to
/// distinct user-facing messages and log lines without string matching.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The string is not a syntactically valid `did:pkh` DID.
    #[error("malformed did:pkh: {0}")]
    MalformedDid(String),
    /// A `did:pkh` for a namespace other than `eip155` (e.g. `solana`, `tezos`).
    #[error("unsupported CAIP-2 namespace {0:?}: only eip155 accounts are accepted")]
    UnsupportedNamespace(String),
    /// The CAIP-2 reference is not a canonical, positive decimal chain id.
    #[error("invalid eip155 chain id {0:?}")]
    InvalidChainId(String),
    /// The account part is not `0x` followed by 40 hex digits.
    #[error("invalid Ethereum address {0:?}")]
    InvalidAddress(String),
    /// Mixed-case address whose EIP-55 checksum does not match.
    #[error("address {0:?} fails its EIP-55 checksum")]
    BadChecksum(String),

    /// The challenge's validity window has passed.
    #[error("challenge expired at {expires_at} (now {now})")]
    ChallengeExpired {
        /// First second at which the challenge is no longer valid.
        expires_at: u64,
        /// The time the check was made.
        now: u64,
    },
    /// No outstanding challenge has this nonce (never issued, already used, or pruned).
    #[error("unknown or already used challenge nonce")]
    UnknownChallenge,
    /// The challenge book is full of unexpired challenges (a flood of requests nobody
    /// answers): refused rather than grown, until the oldest expire.
    #[error("too many sign-in challenges are open (at most {limit}); try again in {retry_after_secs} s")]
    TooManyChallenges {
        /// How many challenges the book holds at most.
        limit: usize,
        /// Seconds until the oldest challenge held expires and frees its place.
        retry_after_secs: u64,
    },
    /// The DID resolver could not produce a DID document.
    #[error("cannot resolve DID {did}: {reason}")]
    UnresolvableDid {
        /// The DID that was being resolved.
        did: String,
        /// The resolver's explanation.
        reason: String,
    },
    /// The resolved document has no authentication method for the DID's account.
    #[error("DID document of {0} has no authentication method for its blockchain account")]
    NoVerificationMethod(String),
    /// The signature is not a parsable 65-byte hex ECDSA signature.
    #[error("unparsable signature: {0}")]
    BadSignature(String),
    /// The signature is valid but was made by another key.
    #[error("signature was made by {recovered}, expected {expected}")]
    SignerMismatch {
        /// Address named by the DID.
        expected: Address,
        /// Address the signature recovers to.
        recovered: Address,
    },
    /// Signing failed (should not happen with an in-memory secp256k1 key).
    #[error("signing failed: {0}")]
    SigningFailed(String),

    /// The master key is not 32 bytes of hex.
    #[error("invalid keystore master key: {0}")]
    InvalidMasterKey(String),
    /// The sealed-key text is not in the expected format.
    #[error("malformed sealed key: {0}")]
    MalformedSealedKey(String),
    /// Authentication of the sealed key failed: wrong master key, tampered
    /// ciphertext, or a blob presented for another account.
    #[error("cannot unseal key: wrong master key, tampered blob or wrong account")]
    KeyUnsealFailed,
    /// Encryption failed while sealing a key.
    #[error("cannot seal key: {0}")]
    KeySealFailed(String),
}

/// Result alias used throughout this crate.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
