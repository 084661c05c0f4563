//! The delay insurance pool: cover terms, claims, alerts.

use crate::session::now;
use crate::views::html;
use crate::views::Page;
use crate::views::{active_alerts, Catalogue};
use crate::{chart, AppState};
use askama::Template;
use axum::extract::State;
use kippu_domain::money::format_fare;
use kippu_domain::staff::{Permission, Target};

#[derive(Template)]
#[template(path = "insurance.html")]
struct InsurancePage {
    delays_chart: String,
    vouchers_chart: String,
    routes: Vec<kippu_domain::model::RouteDelays>,
    vouchers: Vec<(String, i64, String, i64, String)>,
    terms: Vec<TermsView>,
    claims: Vec<(String, String, i64)>,
    alerts: Vec<kippu_gtfs::ServiceAlert>,
    chain_id: u64,
}

/// An insured product's terms, as people read them.
pub(crate) struct TermsView {
    product: String,
    threshold: u32,
    voucher: String,
    caps: String,
}

/// Human wording of a claim's reason and outcome.
fn claim_words(reason: &str, status: &str) -> (String, String) {
    let why = match reason {
        "tapped" => "rode the late run",
        "not_carried" => "left waiting (run cancelled or stop skipped)",
        other => other,
    };
    let outcome = match status {
        "voucher" => "voucher issued",
        "capped" => "stopped by a cap",
        "voted" => "vote recorded, awaiting quorum",
        "refused" => "refused on chain",
        "pending" => "pending (will be retried)",
        other => other,
    };
    (why.into(), outcome.into())
}

/// The delay-insurance dashboard for operators and the insurer: late runs per
/// route (from the GTFS-Realtime feed) and vouchers issued and redeemed. Staff only.
pub(crate) async fn insurance(admin: crate::admin::Admin, State(s): State<AppState>) -> Page {
    admin.may(Permission::InsuranceRead, Target::Consortium)?;
    let routes = s.store.delays_per_route().await?;
    let cat = Catalogue::load(&s).await?;
    let delays_chart = chart::bars_with(
        &routes.iter().map(|r| (format!("route {}", r.route_id), r.runs)).collect::<Vec<_>>(),
        "Late trip runs per route",
        |n| format!("{n} late"),
    );
    let stats = s.store.voucher_stats().await?;
    let mut bars = Vec::new();
    for v in &stats {
        let name = cat.operator(v.operator_id);
        bars.push((format!("{name}: issued"), v.issued_value));
        bars.push((format!("{name}: redeemed"), v.redeemed_value));
    }
    let vouchers_chart = chart::bars_with(&bars, "Voucher value issued and redeemed", |v| {
        format!("{} FARE", format_fare(i128::from(v)))
    });
    let vouchers = stats
        .into_iter()
        .map(|v| {
            (
                cat.operator(v.operator_id),
                v.issued,
                format_fare(i128::from(v.issued_value)),
                v.redeemed,
                format_fare(i128::from(v.redeemed_value)),
            )
        })
        .collect();
    let terms = s
        .store
        .cover_terms()
        .await?
        .into_iter()
        .map(|t| TermsView {
            product: cat.product_name(t.product_id),
            threshold: t.threshold_minutes,
            voucher: format!(
                "{} FARE {} voucher, valid {} days, at {}{}",
                format_fare(i128::from(t.voucher_value)),
                t.voucher_kind,
                t.voucher_lifetime_secs / 86_400,
                cat.operator(t.voucher_operator_id),
                if t.voucher_kind.is_empty() { String::new() } else { format!(" or any {} operator", t.voucher_kind) }
            ),
            caps: format!(
                "{} per run · {} per traveler a day",
                if t.max_per_trip == 0 { "no cap".to_string() } else { t.max_per_trip.to_string() },
                if t.max_per_day == 0 { "no cap".to_string() } else { t.max_per_day.to_string() }
            ),
        })
        .collect();
    let claims = s
        .store
        .claim_counts()
        .await?
        .into_iter()
        .map(|(reason, status, n)| {
            let (why, outcome) = claim_words(&reason, &status);
            (why, outcome, n)
        })
        .collect();
    let alerts = active_alerts(&s, now() as u64).await?;
    html(InsurancePage {
        delays_chart,
        vouchers_chart,
        routes,
        vouchers,
        terms,
        claims,
        alerts,
        chain_id: s.chain.chain_id(),
    })
}
