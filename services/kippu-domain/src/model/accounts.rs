//! Traveler accounts and what is bound to them: certified devices, passkeys, contactless cards.

use alloy_primitives::Address;

/// A traveler account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traveler {
    /// Wallet address.
    pub address: Address,
    /// `did:pkh:eip155:...`.
    pub did: String,
    /// Display name.
    pub display_name: String,
    /// Custodial key sealed by the keystore; `None` for self-custodied wallets.
    pub sealed_key: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A phone whose device key the account certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Ed25519 public key.
    pub device_key: [u8; 32],
    /// The account that certified it.
    pub holder: Address,
    /// Certificate expiry, unix seconds.
    pub cert_expiry: i64,
    /// What the browser said it was (user agent summary), for the traveler's device list.
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// A passkey as stored (bytes as webauthn_rp encodes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// The account.
    pub holder: Address,
    /// The WebAuthn user handle of the account (64 random bytes, the same for all its passkeys).
    pub user_handle: Vec<u8>,
    /// Public key and extensions.
    pub static_state: Vec<u8>,
    /// Sign counter and flags.
    pub dynamic_state: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used: Option<i64>,
}

/// A card binding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBindingRow {
    /// The card's Ed25519 public key.
    pub card_key: [u8; 32],
    /// The ticket its taps present.
    pub ticket_id: u64,
    /// The account that bound it.
    pub holder: Address,
    /// The account's EIP-712 binding signature (`r | s | v`).
    pub sig: Vec<u8>,
    /// Unix seconds.
    pub bound_at: i64,
}
