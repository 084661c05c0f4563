//! A period's printable statement.

use super::*;
use crate::portal::Staff;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use kippu_domain::model::{EventFilter, Operator};
use kippu_domain::staff::{Permission, Target};
use serde_json::json;

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
    staff: Staff,
    State(s): State<AppState>,
    Path((slug, period)): Path<(String, String)>,
    q: Pairs,
) -> Result<Response, AppError> {
    staff.may(Permission::ReportsRead, Target::Org(&slug))?;
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
