//! The consortium's overview report and the ledger's reconciliation.

use crate::views::html;
use crate::views::Page;
use crate::{chart, AppError, AppState};
use askama::Template;
use axum::extract::State;
use kippu_domain::money::format_fare;
use kippu_domain::staff::{Permission, Target};
use std::collections::HashMap;

pub(crate) struct ReportRowView {
    id: u32,
    slug: String,
    name: String,
    kind: String,
    legs: i64,
    revenue: String,
    rides: i64,
    vouchers: String,
    paid: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    rows: Vec<ReportRowView>,
    chart: String,
    escrow: String,
    /// The newest reconciliation with the contracts: `(block, differences as text)`.
    reconciled: Option<(u64, Vec<String>)>,
    chain_id: u64,
}

/// The newest reconciliation, its differences worded for people.
async fn reconciliation(s: &AppState) -> Result<Option<(u64, Vec<String>)>, AppError> {
    let Some((_, block, json)) = s.store.latest_reconciliation().await? else { return Ok(None) };
    let diffs: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
    let words = diffs
        .iter()
        .map(|d| {
            let fare = |k: &str| {
                let v = d[k].as_i64().or_else(|| d[k].as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
                format_fare(i128::from(v))
            };
            format!(
                "{}: ledger {} FARE, chain {} FARE",
                d["what"].as_str().unwrap_or("?"),
                fare("ledger"),
                fare("chain")
            )
        })
        .collect();
    Ok(Some((block, words)))
}

/// The consortium's report across operators: staff only.
pub(crate) async fn report(admin: crate::admin::Admin, State(s): State<AppState>) -> Page {
    admin.may(Permission::ConsortiumRead, Target::Consortium)?;
    let rows = s.store.operator_report().await?;
    let chart = chart::bars(&rows.iter().map(|r| (r.name.clone(), r.revenue)).collect::<Vec<_>>());
    let escrow = s.chain.escrow_balance().await?;
    let slugs: HashMap<u32, String> = s.store.operators().await?.into_iter().map(|o| (o.id, o.slug)).collect();
    let rows = rows
        .into_iter()
        .map(|r| ReportRowView {
            slug: slugs.get(&r.operator_id).cloned().unwrap_or_default(),
            id: r.operator_id,
            name: r.name,
            kind: r.kind,
            legs: r.legs,
            revenue: format_fare(i128::from(r.revenue)),
            rides: r.rides,
            vouchers: format_fare(i128::from(r.vouchers_redeemed)),
            paid: format_fare(i128::from(r.paid_out)),
        })
        .collect();
    let reconciled = reconciliation(&s).await?;
    html(ReportPage { rows, chart, escrow: format_fare(escrow as i128), reconciled, chain_id: s.chain.chain_id() })
}
