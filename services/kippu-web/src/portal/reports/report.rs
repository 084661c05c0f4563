//! The sales and settlement report.

use super::*;
use crate::chart::{self, Column};
use crate::portal::Staff;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use kippu_domain::model::{BundleShare, Operator, OperatorDay, Statement};
use kippu_domain::staff::{Permission, Target};
use serde_json::{json, Value};

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

async fn statements(s: &AppState, operator_id: u32) -> Result<Vec<Statement>, AppError> {
    let mut out = Vec::new();
    for p in s.store.periods().await? {
        out.push(s.store.operator_statement(operator_id, &p).await?);
    }
    Ok(out)
}

/// `GET /operators/{slug}/report`: charts and tables of one operator's figures.
pub(crate) async fn report(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    report_as(s, slug, q, None).await
}

/// `GET /operators/{slug}/report.csv`.
pub(crate) async fn report_csv(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
    report_as(s, slug, q, Some(Format::Csv)).await
}

/// `GET /operators/{slug}/report.json`.
pub(crate) async fn report_json(
    staff: Staff,
    s: State<AppState>,
    slug: Path<String>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug.0))?;
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
