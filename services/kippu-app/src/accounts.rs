//! Traveler accounts: sign-up and sign-in (by password or by a self-custodied wallet), the
//! custodial key that signs for a traveler, and ending an account's key (revocation, erasure).
//!
//! Every account made by sign-up gets a custodial key in the keystore (envelope-encrypted
//! under the master key, used only inside this process); its address is the traveler's
//! `did:pkh`. The password only unlocks a session: it never derives or touches the key.
//! Rate limits and sessions are the web layer's: these functions decide who someone is.

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::Address;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use kippu_domain::model::Traveler;
use kippu_identity::{did_pkh, ChallengeBook, Keystore, SealedKey};

use crate::ports::{Chain, Clock, Notifier, Store};
use crate::{PortError, PortResult};

/// Shortest password accepted at sign-up, in characters.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted at sign-up, in characters (Argon2 hashes whatever it is given).
pub const MAX_PASSWORD: usize = 128;
/// Longest display name, in characters.
pub const MAX_NAME: usize = 60;
/// The reason stored when a traveler revokes their own account key.
pub const REVOKED_BY_TRAVELER: &str = "revoked by the traveler";

/// What is wrong with a typed e-mail address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    /// No `local@domain.tld` shape, or longer than 254 bytes.
    #[error("not an e-mail address")]
    Invalid,
    /// White space or control characters inside.
    #[error("an e-mail address holds no spaces")]
    Spaces,
}

/// The e-mail as stored: trimmed and lower-cased, so case and spaces make no second account
/// (and no second rate-limit bucket).
pub fn normalize_email(raw: &str) -> Result<String, EmailProblem> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@').ok_or(EmailProblem::Invalid)?;
    if local.is_empty() || !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || e.len() > 254 {
        return Err(EmailProblem::Invalid);
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailProblem::Spaces);
    }
    Ok(e)
}

/// An Argon2id hash of `password` with a fresh salt, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing: {e}"))
}

/// Whether `password` matches the PHC string `hash` (a hash that does not parse matches nothing).
pub fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of nothing anyone types, checked when the e-mail is unknown so that a wrong
/// e-mail takes as long as a wrong password and does not reveal who has an account.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

// ---- sign-up ---------------------------------------------------------------------------

/// A sign-up form as typed.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Display name (trimmed here).
    pub name: String,
    /// E-mail (normalized here).
    pub email: String,
    /// Password.
    pub password: String,
    /// The password typed again.
    pub confirm: String,
}

/// A new account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUp {
    /// Its custodial key's address.
    pub address: Address,
    /// Its `did:pkh`.
    pub did: String,
}

/// One thing wrong with a sign-up form, in the order the form is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUpProblem {
    /// Empty, or longer than [`MAX_NAME`] characters.
    Name,
    /// The e-mail.
    Email(EmailProblem),
    /// Shorter than `min` characters.
    PasswordTooShort {
        /// [`MIN_PASSWORD`].
        min: usize,
    },
    /// Longer than `max` characters.
    PasswordTooLong {
        /// [`MAX_PASSWORD`].
        max: usize,
    },
    /// The confirmation differs from the password.
    ConfirmMismatch,
    /// An account signs in with this e-mail already.
    EmailTaken,
}

/// Why a sign-up made no account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignUpError {
    /// The form has problems: every one found, in form order.
    #[error("the sign-up form has {} problem(s)", .0.len())]
    Invalid(Vec<SignUpProblem>),
    /// Two sign-ups raced for one e-mail and the other won; the key made here was dropped unused.
    #[error("e-mail {email} was taken by a sign-up that finished first")]
    EmailTaken {
        /// The e-mail, normalized.
        email: String,
    },
    /// Hashing the password failed.
    #[error("{0}")]
    Hashing(String),
    /// The keystore could not make a key.
    #[error("{0}")]
    Keystore(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Signs a traveler up: checks the form (every problem at once, so the page can show them
/// all), hashes the password off the async workers, makes the custodial key and creates the
/// traveler with its password login in one step, so a sign-up that loses a race for its
/// e-mail leaves no traveler behind.
pub async fn sign_up(
    store: &dyn Store,
    chain: &dyn Chain,
    keystore: &Keystore,
    clock: &dyn Clock,
    form: SignUp,
) -> Result<SignedUp, SignUpError> {
    let mut problems = Vec::new();
    let name = form.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        problems.push(SignUpProblem::Name);
    }
    let email = match normalize_email(&form.email) {
        Ok(e) => Some(e),
        Err(p) => {
            problems.push(SignUpProblem::Email(p));
            None
        }
    };
    let len = form.password.chars().count();
    if len < MIN_PASSWORD {
        problems.push(SignUpProblem::PasswordTooShort { min: MIN_PASSWORD });
    } else if len > MAX_PASSWORD {
        problems.push(SignUpProblem::PasswordTooLong { max: MAX_PASSWORD });
    }
    if form.confirm != form.password {
        problems.push(SignUpProblem::ConfirmMismatch);
    }
    let taken = match &email {
        Some(e) => store.password_login(e).await?.is_some(),
        None => false,
    };
    if taken {
        problems.push(SignUpProblem::EmailTaken);
    }
    let (Some(email), true) = (email, problems.is_empty()) else {
        return Err(SignUpError::Invalid(problems));
    };
    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| SignUpError::Hashing(e.to_string()))?
        .map_err(SignUpError::Hashing)?;
    let (address, sealed) = keystore.create().map_err(|e| SignUpError::Keystore(e.to_string()))?;
    let did = did_pkh(chain.chain_id(), address);
    let traveler = Traveler {
        address,
        did: did.clone(),
        display_name: name,
        sealed_key: Some(sealed.to_string()),
        created_at: clock.now(),
    };
    if !store.create_account(&traveler, &email, &hash, clock.now()).await? {
        return Err(SignUpError::EmailTaken { email });
    }
    tracing::info!(%did, "account created");
    metrics::counter!("kippu_accounts_created_total").increment(1);
    Ok(SignedUp { address, did })
}

// ---- password sign-in ----------------------------------------------------------------

/// Why a password sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordSignInError {
    /// No account with that e-mail, or the wrong password: the two are not told apart.
    #[error("wrong e-mail or password")]
    Wrong,
    /// The password is right but the account's key was revoked.
    #[error("the account's key was revoked: {reason}")]
    KeyRevoked {
        /// The stored reason.
        reason: String,
    },
    /// Too many failed sign-ins for this account or from this address (counted in the database,
    /// so in every process).
    #[error("too many failed sign-ins: try again after {until}")]
    Locked {
        /// Unix seconds.
        until: i64,
    },
    /// Checking the password could not finish.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Checks an e-mail and password (the caller rate-limits first). An unknown e-mail is checked
/// against a decoy hash, so it takes as long as a wrong password.
pub async fn sign_in_with_password(
    store: &dyn Store,
    email: &str,
    password: &str,
) -> Result<Address, PasswordSignInError> {
    let email = normalize_email(email).ok();
    let found = match &email {
        Some(e) => store.password_login(e).await?,
        None => None,
    };
    let hash = found.as_ref().map_or_else(|| decoy_hash().to_owned(), |(_, h)| h.clone());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .map_err(|e| PasswordSignInError::Internal(e.to_string()))?;
    match (found, ok) {
        (Some((address, _)), true) => match store.key_revocation(&address).await? {
            Some((_, reason)) => Err(PasswordSignInError::KeyRevoked { reason }),
            None => Ok(address),
        },
        _ => {
            metrics::counter!("kippu_signin_failed_total").increment(1);
            Err(PasswordSignInError::Wrong)
        }
    }
}

/// Throttle scope of travelers' failed password sign-ins per account (e-mail).
pub const SIGNIN_ACCOUNT: &str = "traveler-signin-account";
/// Throttle scope of travelers' failed password sign-ins per client address.
pub const SIGNIN_CLIENT: &str = "traveler-signin-client";

/// [`sign_in_with_password`], with failures counted in the database per account and per client
/// address (`client`), so a lock set through one process holds in all: ten wrong passwords
/// for an account in a quarter of an hour lock it for a quarter of an hour, twenty from an
/// address lock the address. A success forgives the account's count only.
pub async fn sign_in_throttled(
    store: &dyn Store,
    email: &str,
    password: &str,
    client: &str,
    now: i64,
) -> Result<Address, PasswordSignInError> {
    use kippu_domain::throttle::{Policy, Verdict};
    // Travelers forget passwords more than staff: more tries before the account locks.
    const ACCOUNT: Policy = Policy { max_failures: 10, ..Policy::ACCOUNT };
    let key = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
    for (scope, k) in [(SIGNIN_ACCOUNT, key.as_str()), (SIGNIN_CLIENT, client)] {
        if let Verdict::Locked { until } = store.throttle_verdict(scope, k, now).await? {
            return Err(PasswordSignInError::Locked { until });
        }
    }
    match sign_in_with_password(store, email, password).await {
        Err(PasswordSignInError::Wrong) => {
            let a = store.throttle_failure(SIGNIN_ACCOUNT, &key, now, &ACCOUNT).await?;
            let c = store.throttle_failure(SIGNIN_CLIENT, client, now, &Policy::CLIENT).await?;
            match (a, c) {
                (Verdict::Locked { until }, _) | (_, Verdict::Locked { until }) => {
                    Err(PasswordSignInError::Locked { until })
                }
                _ => Err(PasswordSignInError::Wrong),
            }
        }
        Ok(address) => {
            store.throttle_success(SIGNIN_ACCOUNT, &key, now).await?;
            Ok(address)
        }
        other => other,
    }
}

// ---- wallet sign-in --------------------------------------------------------------------

/// A self-custodied wallet's answer to a sign-in challenge.
#[derive(Debug, Clone)]
pub struct WalletSignIn {
    /// The wallet's `did:pkh`, as sent.
    pub did: String,
    /// The challenge's nonce.
    pub nonce: String,
    /// The `personal_sign` signature of the challenge message, hex.
    pub signature: String,
}

/// A wallet signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSignedIn {
    /// The wallet's address.
    pub address: Address,
    /// Its `did:pkh`, normalized.
    pub did: String,
    /// Whether this first sign-in registered the traveler.
    pub registered: bool,
}

/// Why a wallet sign-in was refused. `Display` is the sentence the wallet's user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletSignInError {
    /// Not a `did:pkh` DID.
    #[error("{0}")]
    BadDid(String),
    /// A DID of another chain.
    #[error("This DID is on chain {did_chain}; Kippu runs on chain {ours}.")]
    WrongChain {
        /// The DID's chain.
        did_chain: u64,
        /// Kippu's.
        ours: u64,
    },
    /// The challenge is unknown, used or expired.
    #[error("Sign-in refused: {0}.")]
    Challenge(String),
    /// The signature does not verify.
    #[error("DID authentication failed: {0}.")]
    AuthFailed(String),
    /// The signature is another key's.
    #[error("DID authentication failed: signer mismatch.")]
    SignerMismatch,
    /// The account's key was revoked.
    #[error("the account key was revoked at {at}: {reason}")]
    KeyRevoked {
        /// When (unix seconds).
        at: i64,
        /// The stored reason.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// DID authentication for a self-custodied wallet: the challenge is taken (once), the
/// signature must be the DID's own, and a revoked account stays out. A first sign-in
/// registers the traveler with no custodial key: Kippu never holds theirs.
pub async fn sign_in_with_wallet(
    store: &dyn Store,
    chain: &dyn Chain,
    challenges: &ChallengeBook,
    clock: &dyn Clock,
    answer: WalletSignIn,
) -> Result<WalletSignedIn, WalletSignInError> {
    let did =
        kippu_identity::normalize_did_pkh(answer.did.trim()).map_err(|e| WalletSignInError::BadDid(e.to_string()))?;
    let (did_chain, address) =
        kippu_identity::parse_did_pkh(&did).map_err(|e| WalletSignInError::BadDid(e.to_string()))?;
    if did_chain != chain.chain_id() {
        return Err(WalletSignInError::WrongChain { did_chain, ours: chain.chain_id() });
    }
    let now_s = clock.now() as u64;
    let challenge = challenges.take(&answer.nonce, now_s).map_err(|e| WalletSignInError::Challenge(e.to_string()))?;
    let verified = kippu_identity::verify_did_auth(&did, &challenge, &answer.signature, now_s)
        .await
        .map_err(|e| WalletSignInError::AuthFailed(e.to_string()))?;
    if verified != address {
        return Err(WalletSignInError::SignerMismatch);
    }
    if let Some((at, reason)) = store.key_revocation(&address).await? {
        return Err(WalletSignInError::KeyRevoked { at, reason });
    }
    let registered = store.traveler(&address).await?.is_none();
    if registered {
        let short = format!("{address:#x}");
        store
            .upsert_traveler(&Traveler {
                address,
                did: did.clone(),
                display_name: format!("Wallet {}…{}", &short[..6], &short[short.len() - 4..]),
                sealed_key: None,
                created_at: clock.now(),
            })
            .await?;
    }
    tracing::info!(%did, "wallet signed in");
    Ok(WalletSignedIn { address, did, registered })
}

// ---- the custodial key ------------------------------------------------------------------

/// Why the traveler's custodial key could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The session's traveler is gone (erased while signed in).
    #[error("no such traveler")]
    NoAccount,
    /// A wallet account: Kippu holds no key of theirs, their wallet signs.
    #[error("a wallet account holds its own key")]
    WalletAccount,
    /// The account key was revoked: it signs nothing.
    #[error("the account key was revoked at {at}: {reason}")]
    KeyRevoked {
        /// When (unix seconds).
        at: i64,
        /// The stored reason.
        reason: String,
    },
    /// The sealed key would not open.
    #[error("{0}")]
    Keystore(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Opens a sealed custodial key, checking it is `address`'s.
pub fn open_key(keystore: &Keystore, address: Address, sealed: &str) -> Result<PrivateKeySigner, SignerError> {
    let sealed = SealedKey::parse(sealed).map_err(|e| SignerError::Keystore(e.to_string()))?;
    keystore.open_for(address, &sealed).map_err(|e| SignerError::Keystore(e.to_string()))
}

/// The traveler's custodial key, opened for one signature in this process; refused for
/// wallet accounts and for revoked keys (in that order).
pub async fn custodial_signer(
    store: &dyn Store,
    keystore: &Keystore,
    traveler: Address,
) -> Result<PrivateKeySigner, SignerError> {
    let t = store.traveler(&traveler).await?.ok_or(SignerError::NoAccount)?;
    let sealed = t.sealed_key.as_deref().ok_or(SignerError::WalletAccount)?;
    if let Some((at, reason)) = store.key_revocation(&traveler).await? {
        return Err(SignerError::KeyRevoked { at, reason });
    }
    open_key(keystore, traveler, sealed)
}

// ---- ending an account's key -------------------------------------------------------------

/// Revokes the traveler's account key (a lost phone, a leaked key): it can no longer sign in
/// or sign passes, its sessions end, and the gates learn it at once.
pub async fn revoke_account_key(
    store: &dyn Store,
    notifier: &dyn Notifier,
    clock: &dyn Clock,
    traveler: Address,
) -> PortResult<()> {
    store.revoke_key(&traveler, REVOKED_BY_TRAVELER, clock.now()).await?;
    notifier.key_revoked(traveler).await;
    tracing::info!(address = %traveler, "account key revoked");
    Ok(())
}

/// Erases the traveler's personal data (GDPR art. 17): the store forgets their name, e-mail,
/// wallet and devices and revokes the address; the gates learn at once that its passes stop.
pub async fn erase_account(
    store: &dyn Store,
    chain: &dyn Chain,
    notifier: &dyn Notifier,
    clock: &dyn Clock,
    traveler: Address,
) -> PortResult<()> {
    let did = did_pkh(chain.chain_id(), traveler);
    store.erase_personal_data(&traveler, &did, clock.now()).await?;
    notifier.key_revoked(traveler).await;
    tracing::info!(address = %traveler, "personal data erased at the traveler's request");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("  Ben@Example.COM ").unwrap(), "ben@example.com");
        for bad in ["", "ben", "ben@", "@example.com", "ben@example", "ben@.com"] {
            assert_eq!(normalize_email(bad), Err(EmailProblem::Invalid), "{bad:?}");
        }
        assert_eq!(normalize_email("be n@example.com"), Err(EmailProblem::Spaces));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery staple", &h));
        assert!(!password_matches("correct horse battery stapler", &h));
        assert!(!password_matches("anything", "not a hash"));
        assert_ne!(h, hash_password("correct horse battery staple").unwrap(), "salted");
        assert!(!password_matches("", decoy_hash()));
    }
}
