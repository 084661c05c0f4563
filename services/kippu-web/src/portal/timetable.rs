//! An operator's timetable: the current one, and importing a GTFS zip.

use crate::audit::ClientAddr;
use crate::portal::Staff;
use crate::{AppError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kippu_app::timetable::{import_timetable, ImportTimetableError, Imported};
use kippu_domain::audit::AuditAction;
use kippu_domain::staff::{Permission, Target};
use serde_json::json;

async fn operator_exists(s: &AppState, slug: &str) -> Result<(), AppError> {
    if s.store.operators().await?.iter().any(|o| o.slug == slug) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("No operator {slug:?}.")))
    }
}

/// The operator's current timetable: version, import time and summary.
pub(crate) async fn current(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    staff.may(Permission::TimetableRead, Target::Org(&slug))?;
    operator_exists(&s, &slug).await?;
    let Some(t) = s.store.current_timetables().await?.into_iter().find(|t| t.operator_slug == slug) else {
        return Err(AppError::NotFound(format!("{slug} has not imported a timetable.")));
    };
    let summary: serde_json::Value = serde_json::from_str(&t.summary).unwrap_or_default();
    Ok(Json(json!({"operator": slug, "version": t.version, "imported_at": t.imported_at, "summary": summary}))
        .into_response())
}

/// Imports a GTFS zip (the request body) as the operator's next timetable version.
pub(crate) async fn import(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    staff.may(Permission::TimetableWrite, Target::Org(&slug))?;
    match import_timetable(&*s.store, &s.notices(), &crate::CLOCK, &slug, Vec::from(body)).await {
        Ok(Imported { version, summary }) => {
            let target = format!("version {version}");
            crate::audit::record(&s, &staff.actor, &slug, AuditAction::TimetableImported, &target, &client).await;
            let summary = serde_json::to_value(&summary).unwrap_or_default();
            Ok(Json(json!({"imported": true, "version": version, "summary": summary})).into_response())
        }
        Err(ImportTimetableError::Refused { problems, current_version }) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"imported": false, "problems": problems, "current_version": current_version})),
        )
            .into_response()),
        Err(e @ ImportTimetableError::UnknownOperator { .. }) => Err(AppError::NotFound(e.to_string())),
        Err(ImportTimetableError::Internal(e)) => Err(AppError::Internal(e)),
        Err(ImportTimetableError::Store(e)) => Err(e.into()),
    }
}
