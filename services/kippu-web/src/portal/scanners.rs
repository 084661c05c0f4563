//! The scanner token staff configure an operator's voucher scanners with.

use crate::portal::Staff;
use crate::{AppError, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};

/// `GET /operators/{slug}/scanner-token`: staff fetch the token to configure the operator's scanners.
pub(crate) async fn scanner_token(
    _staff: Staff,
    State(s): State<AppState>,
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    if !s.store.operators().await?.iter().any(|o| o.slug == slug) {
        return Err(AppError::NotFound(format!("No operator {slug:?}.")));
    }
    Ok(axum::Json(serde_json::json!({"operator": slug, "token": s.identity.portal.scanner_token(&slug)}))
        .into_response())
}
