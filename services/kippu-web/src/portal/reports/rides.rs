//! The rides taken on the operator's services.

use super::*;
use crate::portal::Staff;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use kippu_domain::model::{Operator, RideRow, DAY_SECS};
use kippu_domain::staff::{Permission, Target};
use serde_json::{json, Value};

// ---- drill-down: rides ----------------------------------------------------------------
pub(crate) struct RideView {
    scan_id: String,
    ticket_id: u64,
    gate: String,
    at: String,
    trip: String,
    batch: String,
}

#[derive(Template)]
#[template(path = "operator_rides.html")]
struct RidesPage {
    op: Operator,
    filter: String,
    rows: Vec<RideView>,
    total_count: i64,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    csv: String,
    json: String,
    chain_id: u64,
}

fn ride_json(r: &RideRow) -> Value {
    json!({
        "scan_id": r.scan_id,
        "ticket_id": r.ticket_id,
        "gate": r.gate_key,
        "at": r.at,
        "day": day_param(Some(r.at.div_euclid(DAY_SECS))),
        "trip_id": r.trip_id,
        "batch_id": r.batch_id,
    })
}

/// `GET /operators/{slug}/rides?day=&page=`: the taps behind a rides figure.
pub(crate) async fn rides(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    rides_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/rides.csv`.
pub(crate) async fn rides_csv(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    rides_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/rides.json`.
pub(crate) async fn rides_json(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    rides_as(s, slug, q, Some(Format::Json)).await
}

async fn rides_as(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    q: Pairs,
    fixed: Option<Format>,
) -> Result<Response, AppError> {
    let q = Params::new(q, &["day", "page", "format"])?;
    let format = q.format(fixed)?;
    let day = match q.day()? {
        Some(None) => return Err(bad("Every ride has its scan time: day=undated applies to events only.")),
        Some(d) => d,
        None => None,
    };
    let page = q.page()?;
    let op = operator(&s, &slug).await?;
    let (offset, limit) = window(page, format);
    let found = s.store.operator_rides(op.id, day, offset, limit).await?;
    let page = check_page(page, found.total_count)?;
    let links = Links(&op.slug);
    let query = Links::rides_query(day);
    let with = |path: &str, extra: &str| links.at(path, &[&query, extra]);
    match format {
        Format::Json => json_response(json!({
            "operator": operator_json(&op),
            "filter": { "day": day.map(|d| day_param(Some(d))) },
            "page": limit.map(|_| page),
            "per_page": limit,
            "total_count": found.total_count,
            "rides": found.rides.iter().map(ride_json).collect::<Vec<_>>(),
        })),
        Format::Csv => {
            let mut w = csv_writer();
            w.write_record(["scan_id", "ticket_id", "gate", "at", "day", "trip_id", "batch_id"]).map_err(csv_err)?;
            for r in &found.rides {
                w.write_record([
                    r.scan_id.clone(),
                    r.ticket_id.to_string(),
                    r.gate_key.clone(),
                    r.at.to_string(),
                    day_param(Some(r.at.div_euclid(DAY_SECS))),
                    r.trip_id.clone().unwrap_or_default(),
                    r.batch_id.map(|b| b.to_string()).unwrap_or_default(),
                ])
                .map_err(csv_err)?;
            }
            csv_response(&format!("kippu-{}-rides.csv", op.slug), w)
        }
        Format::Html => {
            let pages = pages_of(found.total_count);
            html_response(RidesPage {
                filter: match day {
                    Some(d) => format!("on {} (UTC)", day_param(Some(d))),
                    None => "all days".into(),
                },
                rows: found
                    .rides
                    .iter()
                    .map(|r| RideView {
                        scan_id: r.scan_id.clone(),
                        ticket_id: r.ticket_id,
                        gate: r.gate_key.clone(),
                        at: fmt_time(Some(r.at)),
                        trip: r.trip_id.clone().unwrap_or_default(),
                        batch: r.batch_id.map(|b| format!("#{b}")).unwrap_or_else(|| "not yet".into()),
                    })
                    .collect(),
                total_count: found.total_count,
                page,
                pages,
                prev: (page > 1).then(|| with("/rides", &format!("page={}", page - 1))),
                next: (page < pages).then(|| with("/rides", &format!("page={}", page + 1))),
                csv: with("/rides.csv", ""),
                json: with("/rides.json", ""),
                op,
                chain_id: s.chain.chain_id(),
            })
        }
    }
}
