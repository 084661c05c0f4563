//! Prometheus metrics, for the scraper's token or staff.

use crate::auth::bearer;
use crate::auth::same_secret;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kippu_domain::staff::{Permission, Target};
use sha2::{Digest, Sha256};

/// `GET /metrics`: for a Prometheus scraper with the metrics bearer token, or staff. Metrics
/// name gates, operators and error rates, which are not for the public.
pub(crate) async fn metrics(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let scraper = match (&s.metrics_token, bearer(&parts.headers)) {
        (Some(token), Some(b)) if !token.is_empty() => same_secret(b, &Sha256::digest(token.as_bytes()).into()),
        _ => false,
    };
    // Otherwise the consortium's staff (a session; no organisation's token carries it).
    let staff = !scraper
        && bearer(&parts.headers).is_none()
        && matches!(crate::auth::caller(&mut parts, &s).await,
            Ok(Some(c)) if c.may(Permission::ConsortiumRead, Target::Consortium).is_ok());
    if !scraper && !staff {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"kippu-metrics\"")],
            "metrics: the metrics token or a staff sign-in is required",
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.platform.metrics().await).into_response()
}
