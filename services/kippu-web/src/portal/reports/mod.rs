//! An operator's reports: sales and settlement by day, its events and rides, period statements; as pages, CSV and JSON. This module holds what they share.

mod events;
mod report;
mod rides;
mod statement;

pub(super) use events::{events, events_csv, events_json};
pub(super) use report::{report, report_csv, report_json};
pub(super) use rides::{rides, rides_csv, rides_json};
pub(super) use statement::statement;

use crate::{AppError, AppState};
use askama::Template;
use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use kippu_domain::model::{Operator, OperatorEvent, Period, Statement, DAY_SECS};
use kippu_domain::money::format_fare;
use serde_json::{json, Value};

/// Rows per page of a drill-down.
const PER_PAGE: i64 = 50;

/// Events listed on a printed statement (the exports have them all).
const STATEMENT_EVENTS: i64 = 500;

/// Days shown on the daily charts (the tables and exports have them all).
const CHART_DAYS: i64 = 60;

/// How a page is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Html,
    Csv,
    Json,
}

type Pairs = Query<Vec<(String, String)>>;

pub(crate) fn bad(msg: impl Into<String>) -> AppError {
    AppError::BadRequest(msg.into())
}

/// Query parameters, checked against what the page takes: an unknown or repeated
/// parameter is refused, so a typo (`?perod=3`) cannot silently widen a figure.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(Query(pairs): Pairs, allowed: &[&str]) -> Result<Self, AppError> {
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!("Unknown parameter {k:?}: this page takes {}.", allowed.join(", "))));
            }
            if pairs[..i].iter().any(|(seen, _)| seen == k) {
                return Err(bad(format!("Parameter {k:?} is given more than once.")));
            }
        }
        Ok(Self(pairs))
    }

    /// A parameter's value; empty counts as absent (an unfilled form field).
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn format(&self, fixed: Option<Format>) -> Result<Format, AppError> {
        let asked = match self.get("format") {
            None => None,
            Some("html") => Some(Format::Html),
            Some("csv") => Some(Format::Csv),
            Some("json") => Some(Format::Json),
            Some(other) => return Err(bad(format!("format must be html, csv or json, not {other:?}."))),
        };
        match (fixed, asked) {
            (Some(f), Some(a)) if f != a => Err(bad("format= contradicts the file extension of the address.")),
            (Some(f), _) => Ok(f),
            (None, a) => Ok(a.unwrap_or(Format::Html)),
        }
    }

    fn page(&self) -> Result<Option<i64>, AppError> {
        self.get("page")
            .map(|p| {
                p.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| bad(format!("page must be a whole number from 1, not {p:?}.")))
            })
            .transpose()
    }

    /// `day=YYYY-MM-DD` (UTC) as days since the epoch; `day=undated`: events without a block time.
    fn day(&self) -> Result<Option<Option<i64>>, AppError> {
        self.get("day").map(parse_day).transpose()
    }
}

fn parse_day(s: &str) -> Result<Option<i64>, AppError> {
    if s == "undated" {
        return Ok(None);
    }
    let refuse = || bad(format!("day must be a date as YYYY-MM-DD (UTC) or \"undated\", not {s:?}."));
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(refuse()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(refuse());
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else { return Err(refuse()) };
    let month = time::Month::try_from(m).map_err(|_| refuse())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| refuse())?;
    Ok(Some(date.midnight().assume_utc().unix_timestamp().div_euclid(DAY_SECS)))
}

/// `YYYY-MM-DD` of a day since the epoch; `undated` for `None`.
fn day_param(day: Option<i64>) -> String {
    match day {
        None => "undated".into(),
        Some(d) => time::OffsetDateTime::from_unix_timestamp(d * DAY_SECS)
            .map(|t| t.date().to_string())
            .unwrap_or_else(|_| d.to_string()),
    }
}

fn fmt_time(ts: Option<i64>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    match ts {
        None => "unknown".into(),
        Some(ts) => time::OffsetDateTime::from_unix_timestamp(ts)
            .ok()
            .and_then(|t| t.format(&fmt).ok())
            .unwrap_or_else(|| ts.to_string()),
    }
}

pub(crate) fn fare(v: i64) -> String {
    format_fare(i128::from(v))
}

/// Signed, with `+` for increases.
fn fare_signed(v: i64) -> String {
    if v > 0 {
        format!("+{}", fare(v))
    } else {
        fare(v)
    }
}

/// `1 leg`, `2 legs`.
fn plural(n: i64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "LegSold" => "Leg sold",
        "TicketRefunded" => "Refund",
        "VoucherRedeemed" => "Voucher redeemed",
        "VoucherSettled" => "Vouchers paid by the insurer",
        "ClaimMoved" => "Usage adjustment",
        "Payout" => "Payout",
        _ => "Other",
    }
}

pub(crate) async fn operator(s: &AppState, slug: &str) -> Result<Operator, AppError> {
    let ops = s.store.operators().await?;
    if let Some(op) = ops.iter().find(|o| o.slug == slug) {
        return Ok(op.clone());
    }
    let known = ops.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>().join(", ");
    Err(AppError::NotFound(format!("No operator {slug:?}. Operators: {known}.")))
}

fn operator_json(op: &Operator) -> Value {
    json!({
        "id": op.id,
        "slug": op.slug,
        "name": op.name,
        "kind": op.kind,
        "payee": format!("{:#x}", op.payee),
        "account": kippu_domain::model::operator_account(op.id),
    })
}

/// Addresses of an operator's drill-downs.
struct Links<'a>(&'a str);

impl Links<'_> {
    /// The query string (without `?`) of an events drill-down.
    fn events_query(kinds: &[&str], day: Option<Option<i64>>, period: Option<u64>, bundle: Option<u32>) -> String {
        let mut q = Vec::new();
        if !kinds.is_empty() {
            q.push(format!("kind={}", kinds.join(",")));
        }
        if let Some(d) = day {
            q.push(format!("day={}", day_param(d)));
        }
        if let Some(p) = period {
            q.push(format!("period={p}"));
        }
        if let Some(b) = bundle {
            q.push(format!("bundle={b}"));
        }
        q.join("&")
    }

    /// `/operators/{slug}{path}` with a query of `parts` (empty ones left out).
    fn at(&self, path: &str, parts: &[&str]) -> String {
        let q: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        if q.is_empty() {
            format!("/operators/{}{path}", self.0)
        } else {
            format!("/operators/{}{path}?{}", self.0, q.join("&"))
        }
    }

    fn events(&self, kinds: &[&str], day: Option<Option<i64>>, period: Option<u64>, bundle: Option<u32>) -> String {
        self.at("/events", &[&Self::events_query(kinds, day, period, bundle)])
    }

    fn rides_query(day: Option<i64>) -> String {
        day.map(|d| format!("day={}", day_param(Some(d)))).unwrap_or_default()
    }

    fn rides(&self, day: Option<i64>) -> String {
        self.at("/rides", &[&Self::rides_query(day)])
    }

    fn statement(&self, period: u64) -> String {
        format!("/operators/{}/statements/{period}", self.0)
    }
}

const SOLD: &[&str] = &["LegSold"];

const REFUNDS: &[&str] = &["TicketRefunded"];

const NET: &[&str] = &["LegSold", "TicketRefunded"];

const VOUCHERS: &[&str] = &["VoucherRedeemed"];

const PAYOUTS: &[&str] = &["Payout"];

const COVER: &[&str] = &["VoucherSettled"];

const ADJUSTMENTS: &[&str] = &["ClaimMoved"];

fn csv_response(filename: &str, w: csv::Writer<Vec<u8>>) -> Result<Response, AppError> {
    let body = w.into_inner().map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(Vec::new())
}

fn csv_err(e: csv::Error) -> AppError {
    AppError::Internal(e.to_string())
}

fn json_response(v: Value) -> Result<Response, AppError> {
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response())
}

fn html_response<T: Template>(t: T) -> Result<Response, AppError> {
    Ok(Html(t.render()?).into_response())
}

// ---- drill-down: events ---------------------------------------------------------------
pub(crate) struct EventView {
    key: String,
    kind: String,
    label: &'static str,
    block: i64,
    log: i64,
    time: String,
    tx: String,
    posting: String,
    owed: String,
    raw: i64,
}

impl EventView {
    fn of(e: &OperatorEvent) -> Self {
        Self {
            key: e.event_key.clone(),
            kind: e.kind.clone(),
            label: kind_label(&e.kind),
            block: e.block_number,
            log: e.log_index,
            time: fmt_time(e.block_time),
            tx: e.tx_hash.clone(),
            posting: fare(e.posting),
            owed: fare_signed(e.owed_change()),
            raw: e.posting,
        }
    }
}

fn event_json(e: &OperatorEvent) -> Value {
    json!({
        "event_key": e.event_key,
        "kind": e.kind,
        "block_number": e.block_number,
        "log_index": e.log_index,
        "block_time": e.block_time,
        "day": e.block_time.map(|t| day_param(Some(t.div_euclid(DAY_SECS)))),
        "tx_hash": e.tx_hash,
        "posting": e.posting,
        "owed_change": e.owed_change(),
    })
}

/// The page window of a drill-down: `(offset, limit)`; all rows for exports without `page`.
pub(crate) fn window(page: Option<i64>, format: Format) -> (i64, Option<i64>) {
    match (page, format) {
        (Some(p), _) => ((p - 1) * PER_PAGE, Some(PER_PAGE)),
        (None, Format::Html) => (0, Some(PER_PAGE)),
        (None, _) => (0, None),
    }
}

fn pages_of(total: i64) -> i64 {
    ((total + PER_PAGE - 1) / PER_PAGE).max(1)
}

/// `page` must name a page that exists (page 1 always does).
fn check_page(page: Option<i64>, total: i64) -> Result<i64, AppError> {
    let (page, pages) = (page.unwrap_or(1), pages_of(total));
    if page > pages {
        return Err(bad(format!("page {page} is past the last page ({pages}).")));
    }
    Ok(page)
}

fn statement_json(st: &Statement, links: &Links<'_>) -> Value {
    let p = &st.period;
    json!({
        "period_id": p.period_id,
        "closed": p.closed(),
        "opened_at": p.opened_at,
        "closed_at": p.closed_at,
        "opening": st.opening,
        "revenue": st.revenue,
        "legs": st.legs,
        "refunds": st.refunds,
        "refunds_count": st.refunds_count,
        "vouchers": st.vouchers,
        "vouchers_count": st.vouchers_count,
        "voucher_cover": st.cover,
        "voucher_cover_count": st.cover_count,
        "adjustments": st.adjustments,
        "adjustments_count": st.adjustments_count,
        "payouts": st.payouts,
        "payouts_count": st.payouts_count,
        "closing": st.closing,
        "reconciles": st.computed_closing() == st.closing,
        "statement": links.statement(p.period_id),
        "events": links.events(&[], None, Some(p.period_id), None),
    })
}

fn period_span(p: &Period) -> String {
    let from = match p.after {
        None => "start of the ledger".to_string(),
        Some(_) => fmt_time(p.opened_at),
    };
    let to = if p.closed() { fmt_time(p.closed_at) } else { "now (open)".to_string() };
    format!("{from} → {to}")
}

/// Basis points of `part` in `whole` (0 when nothing).
pub(crate) fn bps(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        ((i128::from(part) * 10_000 + i128::from(whole) / 2) / i128::from(whole)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_and_print() {
        assert_eq!(parse_day("1970-01-02").unwrap(), Some(1));
        assert_eq!(parse_day("undated").unwrap(), None);
        assert_eq!(day_param(Some(20_000)), "2024-10-04");
        assert_eq!(parse_day(&day_param(Some(20_000))).unwrap(), Some(20_000));
        for bad in ["2024-13-01", "yesterday", "20241004", "2024-10-4x"] {
            assert!(matches!(parse_day(bad), Err(AppError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn params_refuse_unknown_repeated_and_contradicting() {
        let q = |pairs: &[(&str, &str)]| Query(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert!(Params::new(q(&[("perod", "1")]), &["period"]).is_err());
        assert!(Params::new(q(&[("page", "1"), ("page", "2")]), &["page"]).is_err());
        let p = Params::new(q(&[("format", "csv"), ("page", "")]), &["format", "page"]).unwrap();
        assert_eq!(p.format(None).unwrap(), Format::Csv);
        assert!(p.format(Some(Format::Json)).is_err());
        assert_eq!(p.page().unwrap(), None, "an empty field is absent");
        let p = Params::new(q(&[("page", "0")]), &["page"]).unwrap();
        assert!(p.page().is_err());
    }

    #[test]
    fn links_and_shares() {
        let l = Links("bus");
        assert_eq!(
            l.events(NET, Some(Some(1)), Some(2), None),
            "/operators/bus/events?kind=LegSold,TicketRefunded&day=1970-01-02&period=2"
        );
        assert_eq!(l.events(&[], None, None, None), "/operators/bus/events");
        assert_eq!(l.rides(Some(0)), "/operators/bus/rides?day=1970-01-01");
        assert_eq!(bps(1, 3), 3333);
        assert_eq!(bps(5, 0), 0);
        assert_eq!(fare_signed(150), "+1.50");
        assert_eq!(fare_signed(-150), "-1.50");
    }
}
