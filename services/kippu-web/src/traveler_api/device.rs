//! Certifying a phone's device key for offline passes, and its status.

use crate::custody::signer_error;
use crate::session::Traveler;
use crate::{AppError, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kippu_app::devices::{certify_device as certify_device_of, device_state, CertifyDevice, CertifyDeviceError};

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
    let bad_key = || AppError::BadRequest(CertifyDeviceError::NotEd25519.to_string());
    let key = alloy::hex::decode(req.public_key.trim().trim_start_matches("0x"))
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(bad_key)?;
    let req = CertifyDevice { holder: me, device_key: key, label: device_label(&headers) };
    let cert = match certify_device_of(&*s.store, &*s.chain, &s.keystore, &crate::CLOCK, req).await {
        Ok(c) => c,
        Err(CertifyDeviceError::NotEd25519) => return Err(bad_key()),
        Err(e @ CertifyDeviceError::Revoked) => return Err(AppError::Refused(e.to_string())),
        Err(CertifyDeviceError::Signer(e)) => return Err(signer_error(e, "certify devices with their wallet")),
        Err(CertifyDeviceError::Signing(e)) => return Err(AppError::Internal(e)),
        Err(CertifyDeviceError::Store(e)) => return Err(e.into()),
    };
    Ok(Json(serde_json::json!({
        "cert_expiry": cert.cert_expiry,
        "cert_sig": alloy::hex::encode(cert.cert_sig),
        "chain_id": cert.chain_id,
        "holder": format!("{:#x}", cert.holder),
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
    let state = device_state(&*s.store, me, key).await?;
    Ok(Json(serde_json::json!({ "state": state.as_str() })).into_response())
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
