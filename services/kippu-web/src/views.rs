//! Rendering helpers and the view structs more than one audience's pages show.

use crate::session::now;
use crate::{AppError, AppState};
use askama::Template;
use axum::response::Html;
use kippu_domain::model::{Operator, Product, TicketRow};
use std::collections::HashMap;

pub(crate) type Page = Result<Html<String>, AppError>;

pub(crate) fn html<T: Template>(t: T) -> Page {
    Ok(Html(t.render()?))
}

pub(crate) fn fmt_time(ts: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ts.to_string())
}

pub(crate) struct TravelerCard {
    pub(crate) address: String,
    pub(crate) name: String,
    pub(crate) did: String,
}

/// A concession's name in the page's language (`student`, `senior`, `disability`).
pub(crate) fn concession_name(kind: &str) -> String {
    match kind {
        "student" | "senior" | "disability" => crate::i18n::t(&format!("concession.{kind}")).to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) struct TicketView {
    pub(crate) id: u64,
    pub(crate) product: String,
    pub(crate) operator: String,
    pub(crate) validity: String,
    pub(crate) rides: String,
    pub(crate) kind: &'static str,
}

pub(crate) struct VoucherView {
    pub(crate) id: u64,
    pub(crate) value: String,
    pub(crate) operator: String,
    pub(crate) state: String,
}

/// A simulated gate on the pass page (dev only); an on-board one offers the runs its vehicle may be working.
pub(crate) struct GateButton {
    pub(crate) key: String,
    pub(crate) runs: Vec<(String, String)>,
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) struct Catalogue {
    pub(crate) operators: HashMap<u32, Operator>,
    pub(crate) products: HashMap<u32, Product>,
}

impl Catalogue {
    pub(crate) async fn load(s: &AppState) -> Result<Self, AppError> {
        Ok(Self {
            operators: s.store.operators().await?.into_iter().map(|o| (o.id, o)).collect(),
            products: s.store.products().await?.into_iter().map(|p| (p.id, p)).collect(),
        })
    }

    pub(crate) fn operator(&self, id: u32) -> String {
        self.operators.get(&id).map(|o| o.name.clone()).unwrap_or_else(|| format!("operator {id}"))
    }

    pub(crate) fn product_name(&self, id: u32) -> String {
        self.products.get(&id).map(|p| p.name.clone()).unwrap_or_else(|| format!("product {id}"))
    }

    pub(crate) fn ticket(&self, t: &TicketRow) -> TicketView {
        let p = self.products.get(&t.product_id);
        let insurance = p.is_some_and(|p| p.insurance);
        TicketView {
            id: t.id,
            product: p.map(|p| p.name.clone()).unwrap_or_else(|| format!("product {}", t.product_id)),
            operator: self.operator(t.operator_id),
            validity: format!("{} → {}", fmt_time(t.valid_from), fmt_time(t.valid_until)),
            rides: if insurance {
                crate::i18n::t("ticket.delay_cover").into()
            } else {
                match t.rides_left() {
                    None => crate::i18n::t("ticket.unlimited").into(),
                    Some(1) => crate::i18n::t("ticket.one_ride").into(),
                    Some(n) => crate::i18n::tf("ticket.rides_left", n),
                }
            },
            kind: if insurance { "insurance" } else { "ride" },
        }
    }
}

/// How a voucher stands, in words.
pub(crate) fn voucher_state(v: &kippu_domain::model::VoucherRow) -> String {
    match v.redeemed_by {
        Some(_) => crate::i18n::t("voucher.redeemed").into(),
        None if v.expiry < now() => crate::i18n::t("voucher.expired").into(),
        None => crate::i18n::tf("voucher.valid_until", fmt_time(v.expiry)),
    }
}

/// The service alerts stored from the newest feed message that are active at `now`.
pub(crate) async fn active_alerts(s: &AppState, now: u64) -> Result<Vec<kippu_gtfs::ServiceAlert>, AppError> {
    Ok(s.store
        .alerts()
        .await?
        .iter()
        .filter_map(|body| serde_json::from_str::<kippu_gtfs::ServiceAlert>(body).ok())
        .filter(|a| a.active_at(now))
        .collect())
}
