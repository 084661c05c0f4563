//! Organisations, staff accounts, invitations and API tokens as stored.

use crate::staff::{OrgKind, Permission, Role};

/// An organisation of the consortium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// URL path segment, the same as its catalogue entry's (`bus`, `usf`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// What it is.
    pub kind: OrgKind,
    /// Unix seconds.
    pub created_at: i64,
}

/// A member of staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAccount {
    /// Random id (hex).
    pub id: String,
    /// Normalized e-mail: what they sign in with.
    pub email: String,
    /// Their organisation's slug.
    pub organisation: String,
    /// Their role there.
    pub role: Role,
    /// Argon2id PHC string; `None` until they accept their invitation.
    pub password_hash: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who added them (`staff:<email>`, `cli`).
    pub created_by: String,
    /// When an administrator or colleague disabled the account: it signs in no more.
    pub disabled_at: Option<i64>,
}

/// A machine's API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public id (the `<id>` of `kippu_<id>_<secret>`).
    pub id: String,
    /// The organisation it acts for.
    pub organisation: String,
    /// What it is for (`taxi scanner 12`).
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Permission>,
    /// SHA-256 of the whole token, hex.
    pub token_hash: String,
    /// Who issued it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// It is refused from then on.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it last opened a request.
    pub last_used_at: Option<i64>,
}

/// A staff account's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffPasskeyRow {
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// The staff account's id.
    pub account_id: String,
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
