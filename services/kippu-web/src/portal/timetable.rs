//! An operator's timetable: the current one, and importing a GTFS zip.

use crate::portal::Staff;
use crate::session::now;
use crate::{AppError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;

/// Held while a feed is imported.
static IMPORTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn operator_exists(s: &AppState, slug: &str) -> Result<(), AppError> {
    if s.store.operators().await?.iter().any(|o| o.slug == slug) {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("No operator {slug:?}.")))
    }
}

/// The operator's current timetable: version, import time and summary.
pub(crate) async fn current(State(s): State<AppState>, Path(slug): Path<String>) -> Result<Response, AppError> {
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
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let Some(operator) = s.store.operators().await?.into_iter().find(|o| o.slug == slug) else {
        return Err(AppError::NotFound(format!("No operator {slug:?}.")));
    };
    let current = s.store.current_timetables().await?.into_iter().find(|t| t.operator_slug == slug).map(|t| t.version);
    let products = s.store.products().await?;
    // Measuring and parsing a large feed takes seconds of CPU and memory in proportion to it
    // (bounded by `kippu_gtfs::ImportLimits::DEFAULT`): off the async workers, one at a time.
    let parsed = {
        let _one_at_a_time = IMPORTING.lock().await;
        let zip = body.clone();
        tokio::task::spawn_blocking(move || kippu_gtfs::import_timetable(&zip))
            .await
            .map_err(|e| AppError::Internal(format!("timetable import: {e}")))?
    };
    let imported = parsed.and_then(|t| {
        // Products are sold for routes and zones of this timetable: a feed that drops one would strand them.
        let problems = products_left_without_network(&products, operator.id, &t.summary);
        if problems.is_empty() {
            Ok(t)
        } else {
            Err(kippu_gtfs::ImportReport { problems })
        }
    });
    let timetable = match imported {
        Ok(t) => t,
        Err(report) => {
            tracing::warn!(operator = %slug, problems = ?report.problems, "GTFS import refused; previous timetable kept");
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"imported": false, "problems": report.problems, "current_version": current})),
            )
                .into_response());
        }
    };
    let summary = serde_json::to_string(&timetable.summary).map_err(|e| AppError::Internal(e.to_string()))?;
    let feed = base64::engine::general_purpose::STANDARD.encode(&body);
    let version = s.store.save_timetable(&slug, &summary, &feed, now()).await?;
    let trips = timetable.summary.trips;
    let summary_json = serde_json::to_value(&timetable.summary).unwrap_or_default();
    s.platform.timetable_imported(operator.id, timetable).await;
    tracing::info!(operator = %slug, version, trips, "GTFS timetable imported");
    Ok(Json(json!({"imported": true, "version": version, "summary": summary_json})).into_response())
}

/// Products of `operator_id` naming a route or zone that `summary` does not have.
fn products_left_without_network(
    products: &[kippu_domain::model::Product],
    operator_id: u32,
    summary: &kippu_gtfs::TimetableSummary,
) -> Vec<String> {
    let mut problems = Vec::new();
    for p in products.iter().filter(|p| p.operator_id == operator_id) {
        for r in p.routes.iter().filter(|r| !summary.routes.contains_key(*r)) {
            problems
                .push(format!("product {} ({}) is sold for route {r:?}, which this feed does not have", p.id, p.name));
        }
        for z in p.zones.iter().filter(|z| !summary.zones.contains(*z)) {
            problems
                .push(format!("product {} ({}) is sold for zone {z:?}, which this feed does not have", p.id, p.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_dropping_a_route_or_zone_a_product_is_sold_for_is_refused() {
        let product = |id, operator_id, routes: &[&str], zones: &[&str]| kippu_domain::model::Product {
            id,
            operator_id,
            name: format!("p{id}"),
            price: 1,
            duration_secs: 1,
            rides: 1,
            insurance: false,
            routes: routes.iter().map(|r| r.to_string()).collect(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
        };
        let summary = kippu_gtfs::TimetableSummary {
            agencies: vec![],
            routes: [("A".to_string(), "A".to_string())].into(),
            stops: 0,
            trips: 0,
            stop_times: 0,
            services: 0,
            zones: ["1".to_string()].into(),
        };
        let products = [
            product(1, 2, &["A"], &["1"]),
            product(2, 2, &[], &[]),
            product(3, 2, &["A", "F"], &["2"]),
            product(4, 9, &["Z"], &[]),
        ];
        let problems = products_left_without_network(&products, 2, &summary);
        assert_eq!(
            problems,
            [
                "product 3 (p3) is sold for route \"F\", which this feed does not have",
                "product 3 (p3) is sold for zone \"2\", which this feed does not have",
            ],
            "another operator's product 4 is not this feed's business"
        );
    }
}
