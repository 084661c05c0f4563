//! Operator settlement reports, for staff: one operator's figures per day and per
//! bundle with charts, its clearing periods with a printable statement each, and
//! the ledger events (or rides) behind every figure, each page also as CSV and JSON.
//!
//! Every figure comes from `kippu-store`'s report queries over the double-entry
//! ledger; this module only parses parameters, formats and links. Amounts in CSV
//! and JSON are FARE minor units (1/100 FARE), positive as the operator reads
//! them, except `posting`, the ledger's own sign (debits positive): a sale is
//! posted as a credit (negative) to `operator:<id>` and raises what is owed.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use kippu_domain::model::{
    BundleShare, EventFilter, EventPage, Operator, OperatorDay, OperatorEvent, Period, RideRow, Statement, DAY_SECS,
    OPERATOR_EVENT_KINDS,
};
use kippu_domain::money::format_fare;
use serde_json::{json, Value};

use crate::chart::{self, Column};
use crate::portal::Staff;
use crate::{AppError, AppState};

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

fn bad(msg: impl Into<String>) -> AppError {
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

fn fare(v: i64) -> String {
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

async fn operator(s: &AppState, slug: &str) -> Result<Operator, AppError> {
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

// ---- the report ---------------------------------------------------------------------

/// One figure with the drill-down behind it.
pub(crate) struct Figure {
    label: &'static str,
    value: String,
    href: String,
    id: &'static str,
}

pub(crate) struct DayView {
    day: String,
    legs: i64,
    revenue: String,
    refunds: String,
    net: String,
    rides: i64,
    vouchers: String,
    payouts: String,
    sold_href: String,
    refunds_href: String,
    net_href: String,
    rides_href: String,
    vouchers_href: String,
    payouts_href: String,
}

pub(crate) struct BundleView {
    name: String,
    legs: i64,
    net: String,
    share: String,
    href: Option<String>,
}

pub(crate) struct PeriodView {
    id: u64,
    state: &'static str,
    span: String,
    opening: String,
    revenue: String,
    refunds: String,
    vouchers: String,
    payouts: String,
    closing: String,
    statement_href: String,
    events_href: String,
}

#[derive(Template)]
#[template(path = "operator_report.html")]
struct ReportPage {
    op: Operator,
    payee: String,
    figures: Vec<Figure>,
    revenue_chart: String,
    rides_chart: String,
    vouchers_chart: String,
    bundles_chart: String,
    chart_note: Option<String>,
    has_rides: bool,
    has_vouchers: bool,
    days: Vec<DayView>,
    bundles: Vec<BundleView>,
    periods: Vec<PeriodView>,
    reconciles: bool,
    chain_id: u64,
}

fn day_json(d: &OperatorDay) -> Value {
    json!({
        "day": d.day.map(|d| day_param(Some(d))),
        "legs": d.legs,
        "revenue": d.revenue,
        "refunds": d.refunds,
        "refunds_count": d.refunds_count,
        "net_revenue": d.net_revenue(),
        "rides": d.rides,
        "vouchers": d.vouchers,
        "vouchers_count": d.vouchers_count,
        "voucher_cover": d.cover,
        "adjustments": d.adjustments,
        "payouts": d.payouts,
        "payouts_count": d.payouts_count,
    })
}

/// Basis points of `part` in `whole` (0 when nothing).
fn bps(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        ((i128::from(part) * 10_000 + i128::from(whole) / 2) / i128::from(whole)) as i64
    }
}

fn bundle_json(b: &BundleShare, whole: i64) -> Value {
    json!({
        "bundle_id": b.bundle_id,
        "name": b.name,
        "legs": b.legs,
        "revenue": b.revenue,
        "refunds": b.refunds,
        "net_revenue": b.net_revenue(),
        "share_bps": bps(b.net_revenue(), whole),
    })
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

async fn statements(s: &AppState, operator_id: u32) -> Result<Vec<Statement>, AppError> {
    let mut out = Vec::new();
    for p in s.store.periods().await? {
        out.push(s.store.operator_statement(operator_id, &p).await?);
    }
    Ok(out)
}

/// `GET /operators/{slug}/report`: charts and tables of one operator's figures.
pub(crate) async fn report(_: Staff, s: State<AppState>, slug: Path<String>, q: Pairs) -> Result<Response, AppError> {
    report_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/report.csv`.
pub(crate) async fn report_csv(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    report_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/report.json`.
pub(crate) async fn report_json(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    report_as(s, slug, q, Some(Format::Json)).await
}

async fn report_as(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    q: Pairs,
    fixed: Option<Format>,
) -> Result<Response, AppError> {
    let q = Params::new(q, &["format", "table"])?;
    let format = q.format(fixed)?;
    let table = q.get("table").unwrap_or("daily");
    if !["daily", "bundles", "periods"].contains(&table) {
        return Err(bad(format!("table must be daily, bundles or periods, not {table:?}.")));
    }
    let op = operator(&s, &slug).await?;
    let links = Links(&op.slug);
    let daily = s.store.operator_daily(op.id).await?;
    let totals = daily.totals();
    let bundles = s.store.operator_bundles(op.id).await?;
    let statements = statements(&s, op.id).await?;
    let net = totals.net_revenue();
    match format {
        Format::Json => json_response(json!({
            "operator": operator_json(&op),
            "unit": "FARE minor units (1/100 FARE)",
            "totals": {
                "legs": totals.legs,
                "revenue": totals.revenue,
                "refunds": totals.refunds,
                "refunds_count": totals.refunds_count,
                "net_revenue": net,
                "rides": totals.rides,
                "vouchers": totals.vouchers,
                "vouchers_count": totals.vouchers_count,
                "voucher_cover": totals.cover,
                "adjustments": totals.adjustments,
                "payouts": totals.payouts,
                "payouts_count": totals.payouts_count,
                "owed": daily.balance,
            },
            "daily": daily.days.iter().map(day_json).collect::<Vec<_>>(),
            "bundles": bundles.iter().map(|b| bundle_json(b, net)).collect::<Vec<_>>(),
            "periods": statements.iter().map(|st| statement_json(st, &links)).collect::<Vec<_>>(),
        })),
        Format::Csv => {
            let mut w = csv_writer();
            match table {
                "daily" => {
                    w.write_record([
                        "day",
                        "legs",
                        "revenue",
                        "refunds",
                        "net_revenue",
                        "rides",
                        "vouchers_count",
                        "vouchers",
                        "voucher_cover",
                        "adjustments",
                        "payouts",
                    ])
                    .map_err(csv_err)?;
                    for d in &daily.days {
                        w.write_record([
                            day_param(d.day),
                            d.legs.to_string(),
                            d.revenue.to_string(),
                            d.refunds.to_string(),
                            d.net_revenue().to_string(),
                            d.rides.to_string(),
                            d.vouchers_count.to_string(),
                            d.vouchers.to_string(),
                            d.cover.to_string(),
                            d.adjustments.to_string(),
                            d.payouts.to_string(),
                        ])
                        .map_err(csv_err)?;
                    }
                }
                "bundles" => {
                    w.write_record(["bundle_id", "bundle", "legs", "revenue", "refunds", "net_revenue", "share_bps"])
                        .map_err(csv_err)?;
                    for b in &bundles {
                        w.write_record([
                            b.bundle_id.map(|i| i.to_string()).unwrap_or_default(),
                            b.name.clone(),
                            b.legs.to_string(),
                            b.revenue.to_string(),
                            b.refunds.to_string(),
                            b.net_revenue().to_string(),
                            bps(b.net_revenue(), net).to_string(),
                        ])
                        .map_err(csv_err)?;
                    }
                }
                _ => {
                    w.write_record([
                        "period_id",
                        "closed",
                        "opened_at",
                        "closed_at",
                        "opening",
                        "revenue",
                        "refunds",
                        "vouchers",
                        "voucher_cover",
                        "adjustments",
                        "payouts",
                        "closing",
                    ])
                    .map_err(csv_err)?;
                    for st in &statements {
                        let p = &st.period;
                        w.write_record([
                            p.period_id.to_string(),
                            p.closed().to_string(),
                            p.opened_at.map(|t| t.to_string()).unwrap_or_default(),
                            p.closed_at.map(|t| t.to_string()).unwrap_or_default(),
                            st.opening.to_string(),
                            st.revenue.to_string(),
                            st.refunds.to_string(),
                            st.vouchers.to_string(),
                            st.cover.to_string(),
                            st.adjustments.to_string(),
                            st.payouts.to_string(),
                            st.closing.to_string(),
                        ])
                        .map_err(csv_err)?;
                    }
                }
            }
            csv_response(&format!("kippu-{}-{table}.csv", op.slug), w)
        }
        Format::Html => {
            let figures = vec![
                Figure {
                    label: "Revenue share",
                    value: fare(totals.revenue),
                    href: links.events(SOLD, None, None, None),
                    id: "revenue",
                },
                Figure {
                    label: "Refunds",
                    value: fare(totals.refunds),
                    href: links.events(REFUNDS, None, None, None),
                    id: "refunds",
                },
                Figure { label: "Net revenue", value: fare(net), href: links.events(NET, None, None, None), id: "net" },
                Figure {
                    label: "Vouchers redeemed",
                    value: fare(totals.vouchers),
                    href: links.events(VOUCHERS, None, None, None),
                    id: "vouchers",
                },
                Figure {
                    label: "Paid out",
                    value: fare(totals.payouts),
                    href: links.events(PAYOUTS, None, None, None),
                    id: "payouts",
                },
                Figure {
                    label: "Owed now",
                    value: fare(daily.balance),
                    href: links.events(&[], None, None, None),
                    id: "owed",
                },
                Figure { label: "Rides", value: totals.rides.to_string(), href: links.rides(None), id: "rides" },
            ];
            // The charts: the last CHART_DAYS days with activity, gaps filled with zeros.
            let dated: Vec<&OperatorDay> = daily.days.iter().filter(|d| d.day.is_some()).collect();
            let last = dated.last().and_then(|d| d.day).unwrap_or(0);
            let first = dated.first().and_then(|d| d.day).unwrap_or(0).max(last - CHART_DAYS + 1);
            let chart_note = (dated.first().and_then(|d| d.day).unwrap_or(0) < first)
                .then(|| format!("Charts show the last {CHART_DAYS} days; the table below has every day."));
            let span: Vec<(i64, Option<&OperatorDay>)> = if dated.is_empty() {
                vec![]
            } else {
                (first..=last).map(|d| (d, dated.iter().copied().find(|x| x.day == Some(d)))).collect()
            };
            // `MM-DD` under each column.
            let label = |d: i64| {
                let day = day_param(Some(d));
                day.get(5..).map(str::to_string).unwrap_or(day)
            };
            let col = |d: i64, v: i64, href: String| Column { label: label(d), value: v, href: Some(href) };
            let revenue_chart = chart::columns(
                &span
                    .iter()
                    .map(|(d, x)| {
                        col(*d, x.map_or(0, |x| x.net_revenue()), links.events(NET, Some(Some(*d)), None, None))
                    })
                    .collect::<Vec<_>>(),
                "Net revenue per day (FARE)",
                fare,
            );
            let rides_chart = chart::columns(
                &span.iter().map(|(d, x)| col(*d, x.map_or(0, |x| x.rides), links.rides(Some(*d)))).collect::<Vec<_>>(),
                "Rides per day",
                |n| n.to_string(),
            );
            let vouchers_chart = chart::columns(
                &span
                    .iter()
                    .map(|(d, x)| {
                        col(*d, x.map_or(0, |x| x.vouchers), links.events(VOUCHERS, Some(Some(*d)), None, None))
                    })
                    .collect::<Vec<_>>(),
                "Voucher value redeemed per day (FARE)",
                fare,
            );
            let bundles_chart = chart::bars_with(
                &bundles.iter().map(|b| (b.name.clone(), b.net_revenue())).collect::<Vec<_>>(),
                "Net revenue per bundle",
                |v| format!("{} FARE", fare(v)),
            );
            let days = daily
                .days
                .iter()
                .rev()
                .map(|d| {
                    let day = Some(d.day);
                    DayView {
                        day: day_param(d.day),
                        legs: d.legs,
                        revenue: fare(d.revenue),
                        refunds: fare(d.refunds),
                        net: fare(d.net_revenue()),
                        rides: d.rides,
                        vouchers: fare(d.vouchers),
                        payouts: fare(d.payouts),
                        sold_href: links.events(SOLD, day, None, None),
                        refunds_href: links.events(REFUNDS, day, None, None),
                        net_href: links.events(NET, day, None, None),
                        rides_href: links.rides(d.day),
                        vouchers_href: links.events(VOUCHERS, day, None, None),
                        payouts_href: links.events(PAYOUTS, day, None, None),
                    }
                })
                .collect();
            let bundles = bundles
                .iter()
                .map(|b| BundleView {
                    name: b.name.clone(),
                    legs: b.legs,
                    net: fare(b.net_revenue()),
                    share: format!("{:.1} %", bps(b.net_revenue(), net) as f64 / 100.0),
                    href: b.bundle_id.map(|id| links.events(NET, None, None, Some(id))),
                })
                .collect();
            let reconciles = statements.iter().all(|st| st.computed_closing() == st.closing)
                && statements.last().is_none_or(|st| st.closing == daily.balance)
                && totals.net_revenue() + totals.vouchers - totals.cover + totals.adjustments - totals.payouts
                    == daily.balance;
            let periods = statements
                .iter()
                .rev()
                .map(|st| {
                    let p = &st.period;
                    PeriodView {
                        id: p.period_id,
                        state: if p.closed() { "closed" } else { "open" },
                        span: period_span(p),
                        opening: fare(st.opening),
                        revenue: fare(st.revenue),
                        refunds: fare(st.refunds),
                        vouchers: fare(st.vouchers),
                        payouts: fare(st.payouts),
                        closing: fare(st.closing),
                        statement_href: links.statement(p.period_id),
                        events_href: links.events(&[], None, Some(p.period_id), None),
                    }
                })
                .collect();
            html_response(ReportPage {
                payee: format!("{:#x}", op.payee),
                op,
                figures,
                revenue_chart,
                rides_chart,
                vouchers_chart,
                bundles_chart,
                chart_note,
                has_rides: totals.rides > 0,
                has_vouchers: totals.vouchers_count > 0,
                days,
                bundles,
                periods,
                reconciles,
                chain_id: s.chain.chain_id(),
            })
        }
    }
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

/// The page window of a drill-down: `(offset, limit)`; all rows for exports without `page`.
fn window(page: Option<i64>, format: Format) -> (i64, Option<i64>) {
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

/// `GET /operators/{slug}/events?kind=&day=&period=&bundle=&page=`: the events behind a figure.
pub(crate) async fn events(_: Staff, s: State<AppState>, slug: Path<String>, q: Pairs) -> Result<Response, AppError> {
    events_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/events.csv`.
pub(crate) async fn events_csv(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    events_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/events.json`.
pub(crate) async fn events_json(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
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
pub(crate) async fn rides(_: Staff, s: State<AppState>, slug: Path<String>, q: Pairs) -> Result<Response, AppError> {
    rides_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/rides.csv`.
pub(crate) async fn rides_csv(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    rides_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/rides.json`.
pub(crate) async fn rides_json(
    _: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
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

// ---- statements -----------------------------------------------------------------------

/// One line of a statement.
pub(crate) struct Line {
    label: String,
    sign: &'static str,
    amount: String,
    href: Option<String>,
    id: &'static str,
}

#[derive(Template)]
#[template(path = "operator_statement.html")]
struct StatementPage {
    op: Operator,
    payee: String,
    account: String,
    period_id: u64,
    closed: bool,
    span: String,
    lines: Vec<Line>,
    closing: String,
    reconciles: bool,
    check: String,
    rows: Vec<EventView>,
    more: i64,
    report: String,
    events: String,
    csv: String,
    json: String,
    generated: String,
    chain_id: u64,
}

/// `GET /operators/{slug}/statements/{period}`: the printable statement of one period
/// (`?format=json|csv` for its figures and events).
pub(crate) async fn statement(
    _: Staff,
    State(s): State<AppState>,
    Path((slug, period)): Path<(String, String)>,
    q: Pairs,
) -> Result<Response, AppError> {
    let q = Params::new(q, &["format"])?;
    let format = q.format(None)?;
    let period_id: u64 =
        period.parse().map_err(|_| bad(format!("The period must be a period number, not {period:?}.")))?;
    let op = operator(&s, &slug).await?;
    let period = s.store.period(period_id).await?.ok_or_else(|| {
        AppError::NotFound(format!("No clearing period {period_id}: see the report for the periods there are."))
    })?;
    let st = s.store.operator_statement(op.id, &period).await?;
    let links = Links(&op.slug);
    let filter = EventFilter { period: Some(period), ..Default::default() };
    let (offset, limit) = if format == Format::Html { (0, Some(STATEMENT_EVENTS)) } else { (0, None) };
    let found = s.store.operator_events(op.id, &filter, offset, limit).await?;
    match format {
        Format::Json => {
            let mut v = statement_json(&st, &links);
            v["operator"] = operator_json(&op);
            v["unit"] = json!("FARE minor units (1/100 FARE)");
            v["events"] = json!(found.events.iter().map(event_json).collect::<Vec<_>>());
            json_response(v)
        }
        Format::Csv => {
            let mut w = csv_writer();
            w.write_record(["line", "count", "amount"]).map_err(csv_err)?;
            for (line, n, amount) in [
                ("opening", None, st.opening),
                ("revenue", Some(st.legs), st.revenue),
                ("refunds", Some(st.refunds_count), st.refunds),
                ("vouchers", Some(st.vouchers_count), st.vouchers),
                ("voucher_cover", Some(st.cover_count), st.cover),
                ("adjustments", Some(st.adjustments_count), st.adjustments),
                ("payouts", Some(st.payouts_count), st.payouts),
                ("closing", None, st.closing),
            ] {
                w.write_record([line.to_string(), n.map(|n| n.to_string()).unwrap_or_default(), amount.to_string()])
                    .map_err(csv_err)?;
            }
            csv_response(&format!("kippu-{}-statement-{period_id}.csv", op.slug), w)
        }
        Format::Html => {
            let p = Some(period_id);
            let mut lines = vec![
                Line {
                    label: "Opening balance owed".into(),
                    sign: "",
                    amount: fare(st.opening),
                    href: None,
                    id: "opening",
                },
                Line {
                    label: format!("Revenue share, {} sold", plural(st.legs, "leg")),
                    sign: "+",
                    amount: fare(st.revenue),
                    href: Some(links.events(SOLD, None, p, None)),
                    id: "revenue",
                },
                Line {
                    label: format!("Refunds, {}", plural(st.refunds_count, "ticket")),
                    sign: "−",
                    amount: fare(st.refunds),
                    href: Some(links.events(REFUNDS, None, p, None)),
                    id: "refunds",
                },
                Line {
                    label: format!("Vouchers redeemed, {}", st.vouchers_count),
                    sign: "+",
                    amount: fare(st.vouchers),
                    href: Some(links.events(VOUCHERS, None, p, None)),
                    id: "vouchers",
                },
            ];
            // Only an insurer pays vouchers, and only usage-settled bundles move claims.
            if st.cover_count > 0 {
                lines.push(Line {
                    label: format!("Vouchers paid to other operators, {}", st.cover_count),
                    sign: "−",
                    amount: fare(st.cover),
                    href: Some(links.events(COVER, None, p, None)),
                    id: "cover",
                });
            }
            if st.adjustments_count > 0 {
                lines.push(Line {
                    label: format!("Usage adjustments, {}", st.adjustments_count),
                    sign: if st.adjustments < 0 { "−" } else { "+" },
                    amount: fare(st.adjustments.abs()),
                    href: Some(links.events(ADJUSTMENTS, None, p, None)),
                    id: "adjustments",
                });
            }
            lines.push(Line {
                label: format!("Payouts, {}", st.payouts_count),
                sign: "−",
                amount: fare(st.payouts),
                href: Some(links.events(PAYOUTS, None, p, None)),
                id: "payouts",
            });
            let reconciles = st.computed_closing() == st.closing;
            let mut check =
                format!("{} + {} − {} + {}", fare(st.opening), fare(st.revenue), fare(st.refunds), fare(st.vouchers));
            if st.cover_count > 0 {
                check += &format!(" − {}", fare(st.cover));
            }
            if st.adjustments_count > 0 {
                check += &format!(" {} {}", if st.adjustments < 0 { "−" } else { "+" }, fare(st.adjustments.abs()));
            }
            check += &format!(" − {} = {}", fare(st.payouts), fare(st.computed_closing()));
            html_response(StatementPage {
                payee: format!("{:#x}", op.payee),
                account: kippu_domain::model::operator_account(op.id),
                period_id,
                closed: period.closed(),
                span: period_span(&period),
                lines,
                closing: fare(st.closing),
                reconciles,
                check,
                rows: found.events.iter().map(EventView::of).collect(),
                more: found.total_count - found.events.len() as i64,
                report: format!("/operators/{}/report", op.slug),
                events: links.events(&[], None, p, None),
                csv: format!("{}?format=csv", links.statement(period_id)),
                json: format!("{}?format=json", links.statement(period_id)),
                generated: fmt_time(Some(crate::session::now())),
                op,
                chain_id: s.chain.chain_id(),
            })
        }
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
