//! Concession issuers, the credentials they issue, and the credentials travelers hold.

/// A concession issuer Kippu hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRow {
    /// URL path segment (`/issuers/{slug}`).
    pub slug: String,
    /// `did:web:…:issuers:{slug}`.
    pub did: String,
    /// Display name.
    pub name: String,
    /// Ed25519 seed sealed by the keystore.
    pub sealed_seed: String,
}

/// One entry of an issuer's register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredential {
    /// `urn:uuid:…`.
    pub id: String,
    /// Issuer slug.
    pub issuer_slug: String,
    /// Subject DID.
    pub holder_did: String,
    /// `student`, `senior` or `disability`.
    pub concession: String,
    /// Position in the issuer's revocation list.
    pub status_index: i64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub valid_until: i64,
    /// Unix seconds, once revoked.
    pub revoked_at: Option<i64>,
}

/// A credential in a traveler's wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCredential {
    /// The credential's `id`.
    pub id: String,
    /// The signed credential, as JSON text.
    pub body: String,
    /// Unix seconds.
    pub added_at: i64,
}
