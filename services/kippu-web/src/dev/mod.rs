//! The demo's routes and controls (`kippu dev` only): one-click sign-in, simulated gates,
//! a hand-fed delay feed, an open period close.

use crate::custody::open_key;
use crate::custody::refuse_revoked;
use crate::session::new_cookie;
use crate::session::now;
use crate::session::SESSION_SECS;
use crate::{AppError, AppState, DelayOutcome};
use alloy::primitives::Address;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::VerdictMessage;
use kippu_identity::{sign_challenge, verify_did_auth};

/// The simulator and demo services, implemented by the `kippu` binary's dev stack.
#[async_trait]
pub trait DevPlatform: Send + Sync {
    /// Hands a QR image to a simulated gate and returns its verdict; `run` is the trip
    /// an on-board gate's vehicle is working (`None` at a stop gate).
    async fn scan_png(
        &self,
        gate_key: &str,
        png: Vec<u8>,
        run: Option<kippu_domain::TripRef>,
    ) -> Result<VerdictMessage, String>;
    /// Holds a (simulated) contactless card to a simulated gate's reader: the gate
    /// challenges the card and asks the validator, exactly as for a real card.
    async fn tap_card(&self, gate_key: &str, card: kippu_domain::card::Card) -> Result<VerdictMessage, String>;
    /// Ingests a GTFS-Realtime feed (protobuf) fed by hand and issues vouchers for delays.
    async fn ingest_delays(&self, feed: &[u8]) -> Result<DelayOutcome, String>;
    /// Closes the clearing period on chain (usage settlement, vouchers, payouts) and
    /// returns what the close did.
    async fn close_period(&self) -> Result<kippu_app::period::Closed, String>;
    /// The runs of an operator's current timetable, `(trip id, route id)`, in trip order
    /// (offered next to an on-board simulated gate on the pass page).
    fn runs_of(&self, operator_id: u32) -> Vec<(String, String)>;
}

/// The dev routes, added to `r` when the app has a [`DevPlatform`].
pub(crate) fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/signin", post(signin))
        .route("/gates/{op}/{station}/{gate}/scan", post(gate_scan))
        .route("/dev/gates/{op}/{station}/{gate}/tap", post(card_tap))
        .route("/dev/gtfs-rt", post(feed))
        .route("/dev/close-period", post(close_period))
}

/// The dev services, or 404 (the routes are mounted only when they exist, so this is a guard).
pub(crate) fn dev(s: &AppState) -> Result<&dyn DevPlatform, AppError> {
    s.dev.as_deref().ok_or_else(|| AppError::NotFound("Development routes are off.".into()))
}

#[derive(serde::Deserialize)]
pub(crate) struct SigninForm {
    address: String,
}

/// One-click sign-in as a seeded traveler: a DID challenge-response for a custodial
/// traveler, the challenge issued, signed by the keystore inside this process, and
/// verified against the DID document resolved by `ssi`, exactly as a wallet's signature
/// would be.
async fn signin(State(s): State<AppState>, jar: CookieJar, Form(f): Form<SigninForm>) -> Result<Response, AppError> {
    dev(&s)?;
    let address: Address =
        f.address.parse().map_err(|_| AppError::BadRequest("That is not an account address.".into()))?;
    if let Err(e) = refuse_revoked(&s, address).await {
        return Ok((
            StatusCode::FORBIDDEN,
            crate::traveler::signin_with(&s, Some(e.to_string()), String::new()).await?,
        )
            .into_response());
    }
    let Some(t) = s.store.traveler(&address).await? else {
        return Ok((
            StatusCode::NOT_FOUND,
            crate::traveler::signin_with(&s, Some("No such traveler.".into()), String::new()).await?,
        )
            .into_response());
    };
    let sealed = t
        .sealed_key
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("This account signs in with its own wallet.".into()))?;
    let signer = open_key(&s, address, sealed)?;
    let domain = host_of(&s.public_url);
    let now_s = now() as u64;
    let challenge = s.challenges.issue(&domain, now_s).map_err(AppError::from)?;
    let signature = sign_challenge(&signer, &challenge, &t.did).map_err(|e| AppError::Internal(e.to_string()))?;
    let challenge = s.challenges.take(&challenge.nonce, now_s).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let verified = verify_did_auth(&t.did, &challenge, &signature, now_s)
        .await
        .map_err(|e| AppError::BadRequest(format!("DID authentication failed: {e}")))?;
    if verified != address {
        return Err(AppError::BadRequest("DID authentication failed: signer mismatch".into()));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    s.store.create_session(&token, &address, now() + SESSION_SECS).await?;
    tracing::info!(did = %t.did, "signed in");
    Ok((jar.add(new_cookie(token, s.secure_cookies())), Redirect::to("/")).into_response())
}

/// The host (and port) of a URL: the domain a sign-in challenge names.
fn host_of(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or("kippu").to_string()
}

/// `?trip=…&date=YYYYMMDD`: the run an on-board gate's vehicle is working.
#[derive(serde::Deserialize)]
pub(crate) struct RunQuery {
    trip: Option<String>,
    date: Option<String>,
}

fn failed(status: StatusCode, error: String) -> Response {
    (status, Json(serde_json::json!({"open": false, "error": error}))).into_response()
}

/// Presents a QR image to a simulated gate.
async fn gate_scan(
    State(s): State<AppState>,
    Path((op, station, gate)): Path<(String, String, String)>,
    Query(run): Query<RunQuery>,
    body: Bytes,
) -> Result<Response, AppError> {
    let dev = dev(&s)?;
    let key = format!("{op}/{station}/{gate}");
    let run = run.trip.filter(|t| !t.is_empty()).map(|id| kippu_domain::TripRef { id, date: run.date });
    Ok(match dev.scan_png(&key, body.to_vec(), run).await {
        Ok(v) => {
            let outcome = v.reason.map_or_else(|| "OPEN".to_string(), |r| r.code());
            metrics::counter!("kippu_gate_verdicts_total", "gate" => key, "verdict" => outcome).increment(1);
            Json(v).into_response()
        }
        Err(e) => failed(StatusCode::BAD_REQUEST, e),
    })
}

#[derive(serde::Deserialize)]
pub(crate) struct CardSecretForm {
    /// The simulated card's secret (hex): dev only, since a real card never gives it up.
    secret: String,
}

/// A simulated card, given by its secret, tapped at a simulated gate.
async fn card_tap(
    State(s): State<AppState>,
    Path((op, station, gate)): Path<(String, String, String)>,
    Form(f): Form<CardSecretForm>,
) -> Result<Response, AppError> {
    let dev = dev(&s)?;
    let key = format!("{op}/{station}/{gate}");
    let secret = alloy::hex::decode(f.secret.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let Some(secret) = secret else {
        return Ok(failed(StatusCode::BAD_REQUEST, "secret must be 32 bytes of hex".into()));
    };
    Ok(match dev.tap_card(&key, kippu_domain::card::Card::from_secret(secret)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(StatusCode::BAD_REQUEST, e),
    })
}

/// Feeds a GTFS-Realtime message (protobuf body) by hand.
async fn feed(State(s): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let dev = dev(&s)?;
    Ok(match dev.ingest_delays(&body).await {
        // A refused message (duplicate, out of order, stale, malformed) is the sender's problem: 422 with the reason.
        Ok(o) if o.rejected.is_some() => (StatusCode::UNPROCESSABLE_ENTITY, Json(o)).into_response(),
        Ok(o) => Json(o).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": e}))).into_response(),
    })
}

/// Closes the clearing period: usage settlement between operators, redeemed vouchers paid
/// out of the insurer's claim, and every operator paid from escrow. Production runs the
/// same close from `kippu close-period` or on a schedule.
async fn close_period(State(s): State<AppState>) -> Result<Response, AppError> {
    let dev = dev(&s)?;
    Ok(match dev.close_period().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(serde_json::json!({"error": e}))).into_response(),
    })
}
