//! The gate fleet's status.

use crate::views::html;
use crate::views::Page;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use kippu_domain::staff::{Permission, Target};

pub(crate) struct GateView {
    key: String,
    station: String,
    state: String,
    last: String,
    did: String,
}

#[derive(Template)]
#[template(path = "gates.html")]
struct GatesPage {
    gates: Vec<GateView>,
    chain_id: u64,
}

/// The gate fleet: staff only (it shows where every gate stands and what it last decided).
pub(crate) async fn gates(admin: crate::admin::Admin, State(s): State<AppState>) -> Page {
    admin.may(Permission::ConsortiumRead, Target::Consortium)?;
    let gates = s
        .platform
        .gates()
        .await
        .into_iter()
        .map(|g| GateView { key: g.key, station: g.station, state: g.state, last: g.last, did: g.did })
        .collect();
    html(GatesPage { gates, chain_id: s.chain.chain_id() })
}
