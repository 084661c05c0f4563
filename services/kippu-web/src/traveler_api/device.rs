//! Certifying a phone's device key for offline passes, and its status.

use crate::custody::custodial_signer;
use crate::session::now;
use crate::session::Traveler;
use crate::{AppError, AppState};
use alloy::signers::SignerSync;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kippu_domain::model::DeviceRow;

/// How long a device certificate vouches for a phone's key before the phone asks again.
pub(crate) const DEVICE_CERT_SECS: i64 = 30 * 24 * 3600;

// ---- devices ---------------------------------------------------------------------
#[derive(serde::Deserialize)]
pub(crate) struct DeviceRequest {
    /// The phone's Ed25519 public key, hex.
    public_key: String,
}

/// `POST /api/device`: the phone sends the public half of the key it just generated (the
/// private half is non-extractable in its WebCrypto store) and gets the account key's
/// EIP-712 certificate, which it attaches to every pass it signs from then on.
pub(crate) async fn certify_device(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    headers: HeaderMap,
    Json(req): Json<DeviceRequest>,
) -> Result<Response, AppError> {
    let key = alloy::hex::decode(req.public_key.trim().trim_start_matches("0x"))
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .filter(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok())
        .ok_or_else(|| AppError::BadRequest("public_key must be an Ed25519 public key, 64 hex digits.".into()))?;
    if let Some(d) = s.store.device(&key).await? {
        if d.holder != me || d.revoked_at.is_some() {
            return Err(AppError::Refused("This device key was revoked; the phone must make a new one.".into()));
        }
    }
    let signer = custodial_signer(&s, me, "certify devices with their wallet").await?;
    let expiry = now() + DEVICE_CERT_SECS;
    let chain_id = s.chain.chain_id();
    let digest = kippu_domain::device_pass::cert_digest(chain_id, &key, expiry as u64);
    let sig = signer.sign_hash_sync(&digest).map_err(|e| AppError::Internal(e.to_string()))?;
    let label = device_label(&headers);
    s.store
        .upsert_device(&DeviceRow {
            device_key: key,
            holder: me,
            cert_expiry: expiry,
            label,
            created_at: now(),
            revoked_at: None,
        })
        .await?;
    metrics::counter!("kippu_devices_certified_total").increment(1);
    Ok(Json(serde_json::json!({
        "cert_expiry": expiry,
        "cert_sig": alloy::hex::encode(sig.as_bytes()),
        "chain_id": chain_id,
        "holder": format!("{me:#x}"),
    }))
    .into_response())
}

/// A short, human name for the phone from its user agent ("Chrome on Android").
pub(crate) fn device_label(headers: &HeaderMap) -> String {
    let ua = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| match *b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" => "Chrome",
            _ => "Safari",
        })
        .unwrap_or("Browser");
    let os = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(k, _)| ua.contains(k))
    .map(|(_, n)| *n)
    .unwrap_or("unknown system");
    format!("{browser} on {os}")
}

/// `GET /api/device/{key}`: whether this phone's certificate still stands (the pass page asks
/// when it has signal, so a revoked or erased phone learns it must stop).
pub(crate) async fn device_status(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let key = alloy::hex::decode(key.trim()).ok().and_then(|k| <[u8; 32]>::try_from(k).ok());
    let d = match key {
        Some(k) => s.store.device(&k).await?,
        None => None,
    };
    let state = match d {
        Some(d) if d.holder == me && d.revoked_at.is_none() => "certified",
        Some(d) if d.holder == me => "revoked",
        _ => "unknown",
    };
    Ok(Json(serde_json::json!({ "state": state })).into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::device_label;

    #[test]
    fn device_labels() {
        let mut h = HeaderMap::new();
        h.insert(
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/156.0 Mobile Safari/537.36".parse().unwrap(),
        );
        assert_eq!(device_label(&h), "Chrome on Android");
        assert_eq!(device_label(&HeaderMap::new()), "Browser on unknown system");
    }
}
