//! The DID documents and credential status lists anyone may fetch.

use crate::identity::signed_status_list;
use crate::{AppError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kippu_credentials::did_web;
use serde_json::Value;

// ---- documents Kippu publishes ------------------------------------------------
fn did_json(doc: Option<Value>) -> Response {
    match doc {
        Some(d) => ([(header::CONTENT_TYPE, "application/did+json")], d.to_string()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such DID document").into_response(),
    }
}

/// `did:web:<authority>`: the consortium itself.
pub(crate) async fn well_known_did(State(s): State<AppState>) -> Response {
    let id = &s.identity;
    did_json(id.credentials.resolver().local_document(&did_web(&id.authority, &[])))
}

/// `did:web:<authority>:<kind>:<slug>`: operators and issuers.
pub(crate) async fn path_did(State(s): State<AppState>, Path((kind, slug)): Path<(String, String)>) -> Response {
    let id = &s.identity;
    did_json(id.credentials.resolver().local_document(&did_web(&id.authority, &[&kind, &slug])))
}

/// An issuer's Bitstring Status List, signed afresh so a revocation shows at once.
pub(crate) async fn status_list(State(s): State<AppState>, Path(slug): Path<String>) -> Result<Response, AppError> {
    let list = signed_status_list(&s, &slug).await?;
    Ok(([(header::CONTENT_TYPE, "application/vc+ld+json"), (header::CACHE_CONTROL, "no-store")], list.to_string())
        .into_response())
}
