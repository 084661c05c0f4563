//! The operator's ledger events, paged and filtered.

use super::*;
use crate::portal::Staff;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use kippu_domain::model::{EventFilter, EventPage, Operator, OperatorEvent, DAY_SECS, OPERATOR_EVENT_KINDS};
use kippu_domain::staff::{Permission, Target};
use serde_json::json;

#[derive(Template)]
#[template(path = "operator_events.html")]
struct EventsPage {
    op: Operator,
    account: String,
    filter: String,
    rows: Vec<EventView>,
    total_count: i64,
    total_posting: String,
    total_owed: String,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    csv: String,
    json: String,
    chain_id: u64,
}

const EVENT_COLUMNS: [&str; 9] =
    ["event_key", "kind", "block_number", "log_index", "block_time", "day", "tx_hash", "posting", "owed_change"];

fn event_record(e: &OperatorEvent) -> [String; 9] {
    [
        e.event_key.clone(),
        e.kind.clone(),
        e.block_number.to_string(),
        e.log_index.to_string(),
        e.block_time.map(|t| t.to_string()).unwrap_or_default(),
        e.block_time.map(|t| day_param(Some(t.div_euclid(DAY_SECS)))).unwrap_or_default(),
        e.tx_hash.clone(),
        e.posting.to_string(),
        e.owed_change().to_string(),
    ]
}

/// `GET /operators/{slug}/events?kind=&day=&period=&bundle=&page=`: the events behind a figure.
pub(crate) async fn events(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    events_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/events.csv`.
pub(crate) async fn events_csv(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    events_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/events.json`.
pub(crate) async fn events_json(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    events_as(s, slug, q, Some(Format::Json)).await
}

async fn events_as(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    q: Pairs,
    fixed: Option<Format>,
) -> Result<Response, AppError> {
    let q = Params::new(q, &["kind", "day", "period", "bundle", "page", "format"])?;
    let format = q.format(fixed)?;
    let mut kinds: Vec<String> = Vec::new();
    for k in q.get("kind").map(|k| k.split(',').collect::<Vec<_>>()).unwrap_or_default() {
        if !OPERATOR_EVENT_KINDS.contains(&k) {
            return Err(bad(format!(
                "kind must be one or more (comma-separated) of {}, not {k:?}.",
                OPERATOR_EVENT_KINDS.join(", ")
            )));
        }
        if !kinds.iter().any(|x| x == k) {
            kinds.push(k.to_string());
        }
    }
    let day = q.day()?;
    let period_id = q
        .get("period")
        .map(|p| p.parse::<u64>().map_err(|_| bad(format!("period must be a period number, not {p:?}."))))
        .transpose()?;
    let bundle = q
        .get("bundle")
        .map(|b| b.parse::<u32>().map_err(|_| bad(format!("bundle must be a bundle id, not {b:?}."))))
        .transpose()?;
    let page = q.page()?;
    let op = operator(&s, &slug).await?;
    let period = match period_id {
        Some(id) => {
            Some(s.store.period(id).await?.ok_or_else(|| AppError::NotFound(format!("No clearing period {id}.")))?)
        }
        None => None,
    };
    let bundle_name = match bundle {
        Some(id) => Some(
            s.store
                .bundles()
                .await?
                .into_iter()
                .find(|b| b.id == id)
                .ok_or_else(|| AppError::NotFound(format!("No bundle {id}.")))?
                .name,
        ),
        None => None,
    };
    let filter = EventFilter { kinds: kinds.clone(), day, period, bundle };
    let (offset, limit) = window(page, format);
    let found: EventPage = s.store.operator_events(op.id, &filter, offset, limit).await?;
    let page = check_page(page, found.total_count)?;
    let mut described: Vec<String> = Vec::new();
    described.push(if kinds.is_empty() {
        "all kinds".into()
    } else {
        kinds.iter().map(|k| kind_label(k)).collect::<Vec<_>>().join(" and ")
    });
    if let Some(d) = day {
        described.push(if d.is_some() { format!("on {} (UTC)", day_param(d)) } else { "without a block time".into() });
    }
    if let Some(p) = period_id {
        described.push(format!("in period {p}"));
    }
    if let Some(b) = &bundle_name {
        described.push(format!("in bundle {b}"));
    }
    let filter_text = described.join(", ");
    let filter_text = match filter_text.chars().next() {
        Some(first) => first.to_uppercase().chain(filter_text.chars().skip(1)).collect(),
        None => filter_text,
    };
    let links = Links(&op.slug);
    let kind_refs: Vec<&str> = kinds.iter().map(String::as_str).collect();
    let query = Links::events_query(&kind_refs, day, period_id, bundle);
    let with = |path: &str, extra: &str| links.at(path, &[&query, extra]);
    match format {
        Format::Json => json_response(json!({
            "operator": operator_json(&op),
            "unit": "FARE minor units (1/100 FARE); posting: debits positive, owed_change = -posting",
            "filter": {
                "kind": kinds,
                "day": day.map(day_param),
                "period": period_id,
                "bundle": bundle,
            },
            "page": limit.map(|_| page),
            "per_page": limit,
            "total_count": found.total_count,
            "total_posting": found.total_posting,
            "total_owed_change": -found.total_posting,
            "events": found.events.iter().map(event_json).collect::<Vec<_>>(),
        })),
        Format::Csv => {
            let mut w = csv_writer();
            w.write_record(EVENT_COLUMNS).map_err(csv_err)?;
            for e in &found.events {
                w.write_record(event_record(e)).map_err(csv_err)?;
            }
            csv_response(&format!("kippu-{}-events.csv", op.slug), w)
        }
        Format::Html => {
            let pages = pages_of(found.total_count);
            html_response(EventsPage {
                account: kippu_domain::model::operator_account(op.id),
                filter: filter_text,
                rows: found.events.iter().map(EventView::of).collect(),
                total_count: found.total_count,
                total_posting: fare(found.total_posting),
                total_owed: fare_signed(-found.total_posting),
                page,
                pages,
                prev: (page > 1).then(|| with("/events", &format!("page={}", page - 1))),
                next: (page < pages).then(|| with("/events", &format!("page={}", page + 1))),
                csv: with("/events.csv", ""),
                json: with("/events.json", ""),
                op,
                chain_id: s.chain.chain_id(),
            })
        }
    }
}
