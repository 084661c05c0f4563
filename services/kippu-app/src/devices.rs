//! The phones whose device keys an account key certified to sign passes.
//!
//! A phone makes an Ed25519 key it cannot export and asks the account to certify it: the
//! account key signs an EIP-712 certificate (key, expiry) that the phone attaches to every pass
//! it signs, so gates accept the phone's passes offline. A lost phone is revoked: its key
//! signs no more passes anywhere, and every other session of the account ends.

use alloy::signers::SignerSync;
use alloy_primitives::Address;
use kippu_domain::model::DeviceRow;
use kippu_identity::Keystore;

use crate::accounts::{custodial_signer, SignerError};
use crate::ports::{Chain, Clock, Notifier, Store};
use crate::{PortError, PortResult};

/// How long a device certificate vouches for a phone's key before the phone asks again.
pub const DEVICE_CERT_SECS: i64 = 30 * 24 * 3600;

/// A phone asking for its key to be certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifyDevice {
    /// The signed-in traveler.
    pub holder: Address,
    /// The phone's Ed25519 public key.
    pub device_key: [u8; 32],
    /// A short, human name for the phone ("Chrome on Android").
    pub label: String,
}

/// The account key's certificate of a phone's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The account that certified it.
    pub holder: Address,
    /// Until when (unix seconds).
    pub cert_expiry: i64,
    /// The account key's EIP-712 signature (r, s, v).
    pub cert_sig: [u8; 65],
    /// The chain of the certificate's EIP-712 domain.
    pub chain_id: u64,
}

/// Why a phone's key was not certified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertifyDeviceError {
    /// Not an Ed25519 public key.
    #[error("public_key must be an Ed25519 public key, 64 hex digits.")]
    NotEd25519,
    /// The key was revoked, or is another account's: the phone must make a new one.
    #[error("This device key was revoked; the phone must make a new one.")]
    Revoked,
    /// The account key cannot sign (a wallet account, a revoked key …).
    #[error(transparent)]
    Signer(SignerError),
    /// Signing failed.
    #[error("{0}")]
    Signing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Certifies a phone's key with the account key. A key once revoked (or another account's)
/// is never certified again: a revoked phone cannot come back by asking.
pub async fn certify_device(
    store: &dyn Store,
    chain: &dyn Chain,
    keystore: &Keystore,
    clock: &dyn Clock,
    req: CertifyDevice,
) -> Result<DeviceCertificate, CertifyDeviceError> {
    let CertifyDevice { holder, device_key, label } = req;
    if ed25519_dalek::VerifyingKey::from_bytes(&device_key).is_err() {
        return Err(CertifyDeviceError::NotEd25519);
    }
    if let Some(d) = store.device(&device_key).await? {
        if d.holder != holder || d.revoked_at.is_some() {
            return Err(CertifyDeviceError::Revoked);
        }
    }
    let signer = custodial_signer(store, keystore, holder).await.map_err(CertifyDeviceError::Signer)?;
    let cert_expiry = clock.now() + DEVICE_CERT_SECS;
    let chain_id = chain.chain_id();
    let digest = kippu_domain::device_pass::cert_digest(chain_id, &device_key, cert_expiry as u64);
    let sig = signer.sign_hash_sync(&digest).map_err(|e| CertifyDeviceError::Signing(e.to_string()))?;
    store
        .upsert_device(&DeviceRow { device_key, holder, cert_expiry, label, created_at: clock.now(), revoked_at: None })
        .await?;
    metrics::counter!("kippu_devices_certified_total").increment(1);
    Ok(DeviceCertificate { holder, cert_expiry, cert_sig: sig.as_bytes(), chain_id })
}

/// A traveler revoking one of their phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeDevice {
    /// The signed-in traveler.
    pub holder: Address,
    /// The phone's key.
    pub device_key: [u8; 32],
    /// The session doing the revoking, which stays open.
    pub keep_session: String,
}

/// Why a phone was not revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeDeviceError {
    /// The traveler has no such device.
    #[error("You have no such device.")]
    NoSuchDevice,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// A lost phone: its key signs no more passes anywhere, from the next scan on (the gates are
/// told at once), and every other session of the account ends, so the phone cannot have a
/// new key certified either.
pub async fn revoke_device(
    store: &dyn Store,
    notifier: &dyn Notifier,
    clock: &dyn Clock,
    req: RevokeDevice,
) -> Result<(), RevokeDeviceError> {
    if !store.revoke_device(&req.device_key, &req.holder, clock.now(), &req.keep_session).await? {
        return Err(RevokeDeviceError::NoSuchDevice);
    }
    notifier.device_revoked(req.device_key).await;
    tracing::info!(holder = %req.holder, "device revoked");
    Ok(())
}

/// Where a phone's certificate stands, as the phone asks when it has signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Certified by this account and not revoked.
    Certified,
    /// This account's, revoked: the phone must stop signing.
    Revoked,
    /// No device of this account (never certified, erased, or another account's).
    Unknown,
}

impl DeviceState {
    /// The word the phone's script reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certified => "certified",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// Whether `holder`'s phone with `device_key` (if the key parsed at all) is still certified.
pub async fn device_state(store: &dyn Store, holder: Address, device_key: Option<[u8; 32]>) -> PortResult<DeviceState> {
    let d = match device_key {
        Some(k) => store.device(&k).await?,
        None => None,
    };
    Ok(match d {
        Some(d) if d.holder == holder && d.revoked_at.is_none() => DeviceState::Certified,
        Some(d) if d.holder == holder => DeviceState::Revoked,
        _ => DeviceState::Unknown,
    })
}
