//! Prometheus metrics, for the scraper's token or staff.

use crate::auth::bearer;
use crate::auth::same_secret;
use crate::auth::staff_signed_in;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// `GET /metrics`: for a Prometheus scraper with the metrics bearer token, or staff. Metrics
/// name gates, operators and error rates, which are not for the public.
pub(crate) async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let scraper = match (&s.metrics_token, bearer(&headers)) {
        (Some(token), Some(b)) if !token.is_empty() => same_secret(b, &Sha256::digest(token.as_bytes()).into()),
        _ => false,
    };
    if !scraper && !staff_signed_in(&headers, &s.identity.portal) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"kippu-metrics\"")],
            "metrics: the metrics token or a staff sign-in is required",
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.platform.metrics()).into_response()
}
