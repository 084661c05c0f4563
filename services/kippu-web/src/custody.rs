//! The custodial keys Kippu holds for travelers who signed up with a password: opening one, and refusing one the traveler revoked.

use crate::views::fmt_time;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use kippu_identity::SealedKey;

/// A revoked account key signs nothing: no sign-in, no pass.
pub(crate) async fn refuse_revoked(s: &AppState, address: Address) -> Result<(), AppError> {
    match s.store.key_revocation(&address).await? {
        Some((at, reason)) => {
            // The stored reasons Kippu writes, in the page's language; any other as stored.
            let reason = match reason.as_str() {
                "revoked by the traveler" => crate::i18n::t("key.reason.traveler").to_owned(),
                "erased at the traveler's request" => crate::i18n::t("key.reason.erased").to_owned(),
                _ => reason,
            };
            Err(AppError::Refused(crate::i18n::tn2("key.revoked", "at", fmt_time(at), "reason", reason)))
        }
        None => Ok(()),
    }
}

/// The signed-in traveler's custodial key, opened for one signature in this
/// process; refused for revoked keys and for wallet accounts (which `do_instead`).
pub(crate) async fn custodial_signer(
    s: &AppState,
    me: Address,
    do_instead: &str,
) -> Result<PrivateKeySigner, AppError> {
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let sealed =
        t.sealed_key.as_deref().ok_or_else(|| AppError::BadRequest(format!("Wallet accounts {do_instead}.")))?;
    refuse_revoked(s, me).await?;
    open_key(s, me, sealed)
}

pub(crate) fn open_key(s: &AppState, address: Address, sealed: &str) -> Result<PrivateKeySigner, AppError> {
    let sealed = SealedKey::parse(sealed).map_err(|e| AppError::Internal(e.to_string()))?;
    s.keystore.open_for(address, &sealed).map_err(|e| AppError::Internal(e.to_string()))
}
