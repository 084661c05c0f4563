//! The audit log in the portal: the consortium's admins and auditors see every entry
//! (`/portal/audit`), an organisation's staff their own organisation's
//! (`/portal/orgs/{slug}/audit`); both filter by action, actor and day, and export CSV.

use crate::portal::Staff;
use crate::views::{fmt_time, html, Page};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use kippu_domain::audit::{AuditAction, AuditFilter};
use kippu_domain::staff::{Permission, Target};
use std::collections::HashMap;

/// Entries a page shows at most (the CSV export holds up to [`CSV_ROWS`]).
const PAGE_ROWS: i64 = 500;
/// Entries an export holds at most.
const CSV_ROWS: i64 = 100_000;

struct Row {
    seq: i64,
    at: String,
    actor: String,
    organisation: String,
    action: &'static str,
    target: String,
    client: String,
}

#[derive(Template)]
#[template(path = "portal_audit.html")]
struct AuditPage {
    title: String,
    base: String,
    all_orgs: bool,
    actions: Vec<&'static str>,
    organisation: String,
    action: String,
    actor: String,
    since: String,
    until: String,
    query: String,
    rows: Vec<Row>,
    limit: i64,
    chain_id: u64,
}

fn day(v: Option<&String>, name: &str, end: bool) -> Result<Option<i64>, AppError> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d) => {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| AppError::BadRequest(format!("{name}: a day as YYYY-MM-DD, not {d:?}.")))?;
            // `until` takes in the whole day it names.
            let date = if end { date.succ_opt().unwrap_or(date) } else { date };
            Ok(Some(date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp()))
        }
    }
}

fn filter(q: &HashMap<String, String>, organisation: Option<String>) -> Result<AuditFilter, AppError> {
    let action = match q.get("action").map(|a| a.trim()).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(AuditAction::parse(a).ok_or_else(|| AppError::BadRequest(format!("No audit action {a:?}.")))?),
    };
    Ok(AuditFilter {
        organisation,
        action,
        actor: q.get("actor").map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()),
        since: day(q.get("since"), "since", false)?,
        until: day(q.get("until"), "until", true)?,
    })
}

async fn render(
    s: &AppState,
    title: String,
    base: String,
    all_orgs: bool,
    f: AuditFilter,
    q: &HashMap<String, String>,
) -> Page {
    let rows = s
        .store
        .audit_search(&f, PAGE_ROWS)
        .await?
        .into_iter()
        .map(|e| Row {
            seq: e.seq,
            at: fmt_time(e.record.at),
            actor: e.record.actor,
            organisation: e.record.organisation,
            action: e.record.action.as_str(),
            target: e.record.target,
            client: e.record.client,
        })
        .collect();
    let keep = ["organisation", "action", "actor", "since", "until"];
    let query = keep
        .iter()
        .filter_map(|k| q.get(*k).filter(|v| !v.is_empty()).map(|v| format!("{k}={}", crate::views::urlencode(v))))
        .collect::<Vec<_>>()
        .join("&");
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    html(AuditPage {
        title,
        base,
        all_orgs,
        actions: AuditAction::ALL.map(|a| a.as_str()).to_vec(),
        organisation: get("organisation"),
        action: get("action"),
        actor: get("actor"),
        since: get("since"),
        until: get("until"),
        query,
        rows,
        limit: PAGE_ROWS,
        chain_id: s.chain.chain_id(),
    })
}

async fn csv(s: &AppState, f: AuditFilter, name: &str) -> Result<Response, AppError> {
    let body = kippu_domain::audit::to_csv(&s.store.audit_search(&f, CSV_ROWS).await?);
    let disposition = format!("attachment; filename=\"audit-{name}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

fn consortium_filter(q: &HashMap<String, String>) -> Result<AuditFilter, AppError> {
    filter(q, q.get("organisation").map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()))
}

/// `GET /portal/audit`: every organisation's entries (the consortium's admins and auditors).
pub(crate) async fn all(staff: Staff, State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Page {
    staff.may(Permission::AuditRead, Target::Consortium)?;
    let f = consortium_filter(&q)?;
    render(&s, "Audit log".into(), "/portal/audit".into(), true, f, &q).await
}

/// `GET /portal/audit.csv`.
pub(crate) async fn all_csv(
    staff: Staff,
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    staff.may(Permission::AuditRead, Target::Consortium)?;
    csv(&s, consortium_filter(&q)?, "all").await
}

/// `GET /portal/orgs/{slug}/audit`: one organisation's entries.
pub(crate) async fn org(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    staff.may(Permission::AuditRead, Target::Org(&slug))?;
    let f = filter(&q, Some(slug.clone()))?;
    render(&s, format!("Audit log of {slug}"), format!("/portal/orgs/{slug}/audit"), false, f, &q).await
}

/// `GET /portal/orgs/{slug}/audit.csv`.
pub(crate) async fn org_csv(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    staff.may(Permission::AuditRead, Target::Org(&slug))?;
    csv(&s, filter(&q, Some(slug.clone()))?, &slug).await
}
