//! Who may log in: one random password per login, kept only as a hash.
//!
//! Each gate (and the validators' login) gets its own random password when it is
//! issued; the platform keeps the SHA-256 of it ([`credential_hash`]) and, for
//! Mosquitto, the PBKDF2 line of its password file
//! ([`crate::mosquitto_password_line`]). Nothing can be derived from a master key,
//! so a leaked repository or configuration yields no broker login.
//!
//! A plain SHA-256 suffices because the passwords are random and at least 128 bits
//! ([`random_password`]): there is nothing to guess, so key stretching would only
//! cost CPU on every CONNECT.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::acl::{Credentials, Identity};
use crate::error::{MqttError, Result};

/// Random bytes in a password from [`random_password`] (256 bits).
const PASSWORD_BYTES: usize = 32;

/// The credential store could not answer (e.g. its database is down). Distinct from
/// "wrong password": the broker refuses a new login with "server unavailable" and
/// keeps connections that logged in earlier, instead of cutting every gate off.
#[derive(Debug, thiserror::Error)]
#[error("credential store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// Where the secured embedded broker checks logins: on every CONNECT, and again
/// periodically for each live connection, so a revoked or rotated credential also
/// ends the sessions opened with it.
///
/// Called from the broker's own runtime threads, concurrently; keep it quick
/// (an indexed lookup, or a cache).
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The identity `username` logs in as when `password` is its current credential,
    /// `Ok(None)` when it is not (unknown user, wrong, rotated or revoked password).
    ///
    /// The identity must be the one the username names ([`Identity::from_username`]):
    /// the topic ACL, here and in Mosquitto's `%u` patterns, is keyed by username.
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<Identity>, StoreUnavailable>;
}

/// SHA-256 of `password`, lowercase hex: what the platform stores per login.
pub fn credential_hash(password: &str) -> String {
    hex(&Sha256::digest(password.as_bytes()))
}

/// Whether `password` hashes to `stored` (a [`credential_hash`]), compared in constant time.
/// A malformed `stored` matches nothing.
pub fn credential_matches(stored: &str, password: &str) -> bool {
    let Some(stored) = unhex32(stored) else { return false };
    constant_time_eq(&stored, &Sha256::digest(password.as_bytes()))
}

/// A fresh password: 256 random bits from the OS, base64url without padding
/// (43 characters, safe in a URL's userinfo and in Mosquitto's password file).
pub fn random_password() -> String {
    let mut bytes = [0u8; PASSWORD_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Logins held in memory as SHA-256 digests: for tests, benches, the loopback demo
/// and anything without a database. Add, rotate and revoke take effect on the next
/// CONNECT, and on live connections at the broker's next re-check.
#[derive(Debug, Default)]
pub struct MemoryCredentials {
    hashes: RwLock<HashMap<String, [u8; 32]>>,
}

impl MemoryCredentials {
    /// An empty store: nobody may log in.
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues `identity` a fresh [`random_password`], replacing any it had (add or rotate),
    /// and returns the login to hand over. Anonymous has no login.
    pub fn issue(&self, identity: &Identity) -> Result<Credentials> {
        let username = identity
            .username()
            .ok_or_else(|| MqttError::InvalidOptions("anonymous cannot be issued a login".into()))?;
        let password = random_password();
        self.set_password(&username, &password)?;
        Ok(Credentials { username, password })
    }

    /// Sets the password of `username` (a gate key or `validator`), adding the login or
    /// replacing its password. Empty passwords are refused.
    pub fn set_password(&self, username: &str, password: &str) -> Result<Identity> {
        let identity = Identity::from_username(username)
            .ok_or_else(|| MqttError::InvalidOptions(format!("{username:?} is neither a gate path nor a validator")))?;
        if password.is_empty() {
            return Err(MqttError::InvalidOptions("empty password".into()));
        }
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        self.hashes.write().unwrap_or_else(|e| e.into_inner()).insert(username.to_owned(), digest);
        Ok(identity)
    }

    /// Removes the login of `username`; `false` if there was none.
    pub fn revoke(&self, username: &str) -> bool {
        self.hashes.write().unwrap_or_else(|e| e.into_inner()).remove(username).is_some()
    }
}

#[async_trait::async_trait]
impl CredentialStore for MemoryCredentials {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<Identity>, StoreUnavailable> {
        let stored = self.hashes.read().unwrap_or_else(|e| e.into_inner()).get(username).copied();
        let Some(stored) = stored else { return Ok(None) };
        let matches = constant_time_eq(&stored, &Sha256::digest(password.as_bytes()));
        Ok(matches.then(|| Identity::from_username(username)).flatten())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Both are 32-byte digests, so the length check leaks nothing.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use kippu_domain::topics::GatePath;

    use super::*;

    fn gate() -> Identity {
        Identity::Gate(GatePath::new("metro", "central", "g1").unwrap())
    }

    #[test]
    fn hashes_are_sha256_hex_and_checked() {
        // printf '%s' 'abc' | sha256sum
        assert_eq!(credential_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let h = credential_hash("secret");
        assert!(credential_matches(&h, "secret"));
        assert!(credential_matches(&h.to_uppercase(), "secret"), "hex digits in either case");
        assert!(!credential_matches(&h, "secreT"));
        assert!(!credential_matches(&h, ""));
        assert!(!credential_matches(&h[..63], "secret"));
        assert!(!credential_matches(&format!("{}zz", &h[..62]), "secret"));
        assert!(!credential_matches("", ""));
    }

    #[test]
    fn random_passwords_are_long_url_safe_and_distinct() {
        let a = random_password();
        assert_eq!(a.len(), 43, "256 bits in unpadded base64");
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{a}");
        assert_ne!(a, random_password());
    }

    #[tokio::test]
    async fn memory_store_adds_rotates_and_revokes() {
        let store = MemoryCredentials::new();
        let login = store.issue(&gate()).unwrap();
        assert_eq!(login.username, "metro/central/g1");
        assert_eq!(store.authenticate("metro/central/g1", &login.password).await.unwrap(), Some(gate()));
        assert_eq!(store.authenticate("metro/central/g1", "wrong").await.unwrap(), None);
        assert_eq!(store.authenticate("metro/central/g2", &login.password).await.unwrap(), None, "another gate");
        assert_eq!(store.authenticate("validator", &login.password).await.unwrap(), None);

        let rotated = store.issue(&gate()).unwrap();
        assert_ne!(rotated.password, login.password);
        assert_eq!(store.authenticate("metro/central/g1", &login.password).await.unwrap(), None, "old password");
        assert_eq!(store.authenticate("metro/central/g1", &rotated.password).await.unwrap(), Some(gate()));

        assert!(store.revoke("metro/central/g1"));
        assert!(!store.revoke("metro/central/g1"));
        assert_eq!(store.authenticate("metro/central/g1", &rotated.password).await.unwrap(), None, "revoked");

        assert_eq!(store.set_password("validator", "pw").unwrap(), Identity::Validator);
        assert_eq!(store.authenticate("validator", "pw").await.unwrap(), Some(Identity::Validator));
        for bad in ["", "metro/central", "gate:metro/central/g1", "metro/+/g1"] {
            assert!(store.set_password(bad, "pw").is_err(), "{bad}");
        }
        assert!(store.set_password("validator", "").is_err());
        assert!(store.issue(&Identity::Anonymous).is_err());
    }
}
