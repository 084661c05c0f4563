//! The custodial keys Kippu holds for travelers who signed up with a password: opening one,
//! and refusing one the traveler revoked.

use crate::views::fmt_time;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use kippu_app::accounts::SignerError;

/// A revoked account key signs nothing: no sign-in, no pass (the demo's one-click sign-in).
#[cfg(feature = "dev")]
pub(crate) async fn refuse_revoked(s: &AppState, address: Address) -> Result<(), AppError> {
    match s.store.key_revocation(&address).await? {
        Some((at, reason)) => Err(key_revoked(at, reason)),
        None => Ok(()),
    }
}

/// The refusal of a key revoked at `at` for `reason`.
pub(crate) fn key_revoked(at: i64, reason: String) -> AppError {
    // The stored reasons Kippu writes, in the page's language; any other as stored.
    let reason = match reason.as_str() {
        "revoked by the traveler" => crate::i18n::t("key.reason.traveler").to_owned(),
        "erased at the traveler's request" => crate::i18n::t("key.reason.erased").to_owned(),
        _ => reason,
    };
    AppError::Refused(crate::i18n::tn2("key.revoked", "at", fmt_time(at), "reason", reason))
}

/// Why the custodial key could not sign, as the page says it; a wallet account is told to
/// `do_instead` with its own wallet.
pub(crate) fn signer_error(e: SignerError, do_instead: &str) -> AppError {
    match e {
        SignerError::NoAccount => AppError::SignInRequired,
        SignerError::WalletAccount => AppError::BadRequest(format!("Wallet accounts {do_instead}.")),
        SignerError::KeyRevoked { at, reason } => key_revoked(at, reason),
        SignerError::Keystore(e) => AppError::Internal(e),
        SignerError::Store(e) => e.into(),
    }
}

/// The signed-in traveler's custodial key, opened for one signature in this
/// process; refused for revoked keys and for wallet accounts (which `do_instead`).
pub(crate) async fn custodial_signer(
    s: &AppState,
    me: Address,
    do_instead: &str,
) -> Result<PrivateKeySigner, AppError> {
    kippu_app::accounts::custodial_signer(&*s.store, &s.keystore, me).await.map_err(|e| signer_error(e, do_instead))
}

/// A traveler's sealed key, opened (the demo's one-click sign-in).
#[cfg(feature = "dev")]
pub(crate) fn open_key(s: &AppState, address: Address, sealed: &str) -> Result<PrivateKeySigner, AppError> {
    kippu_app::accounts::open_key(&s.keystore, address, sealed).map_err(|e| signer_error(e, ""))
}
