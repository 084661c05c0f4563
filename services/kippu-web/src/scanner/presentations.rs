//! Verifying a traveler's presented credential (an inspector's or a gate's scanner).

use crate::identity::chrono_now;
use crate::identity::too_many;
use crate::identity::trust_list;
use crate::identity::Lists;
use crate::session::now;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kippu_credentials::CredentialError;
use serde_json::{json, Value};

/// A challenge for a self-custodied wallet's presentation; 503 while too many are open.
pub(crate) async fn presentation_challenge(State(s): State<AppState>) -> Response {
    match s.presentation_challenges.issue(&s.identity.authority, now() as u64) {
        Ok(c) => Json(json!({"challenge": c.nonce, "domain": s.identity.authority, "expires_at": c.expires_at}))
            .into_response(),
        Err(e) => too_many(e),
    }
}

/// Verifies a presentation from any wallet: the answer names the holder and
/// the concessions proven, or the specific reason it was refused.
pub(crate) async fn verify_presentation_api(State(s): State<AppState>, Json(body): Json<Value>) -> Response {
    let vp = body.get("presentation").cloned().unwrap_or(Value::Null);
    let nonce = vp.pointer("/proof/challenge").and_then(Value::as_str).unwrap_or_default().to_owned();
    // One use per challenge: a replayed presentation finds its challenge gone.
    let challenge = match s.presentation_challenges.take(&nonce, now() as u64) {
        Ok(c) => c,
        Err(_) => {
            let e = CredentialError::WrongChallenge;
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"verified": false, "code": e.code(), "error": e.to_string()})),
            )
                .into_response();
        }
    };
    let trust = match trust_list(&s).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match s
        .identity
        .credentials
        .verify_presentation(&vp, &challenge.nonce, &s.identity.authority, &trust, &Lists(&s), chrono_now())
        .await
    {
        Ok(v) => Json(json!({"verified": true, "holder": v.holder, "concessions": v.concessions})).into_response(),
        Err(e) => {
            metrics::counter!("kippu_presentations_refused_total", "code" => e.code()).increment(1);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"verified": false, "code": e.code(), "error": e.to_string()})),
            )
                .into_response()
        }
    }
}
