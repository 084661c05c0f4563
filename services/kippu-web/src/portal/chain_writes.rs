//! The chain-write outbox in the portal (issue 20): how many writes stand where (pending,
//! stuck, failed, confirmed then gone from the chain, confirmed lately), and the writes
//! themselves, filtered by state. The consortium's admins and auditors only, like the whole
//! audit log: the outbox is the platform's, not an organisation's.

use crate::portal::Staff;
use crate::session::now;
use crate::views::{fmt_time, html, Page};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use kippu_app::chain_writes::{overview, state_of, CONFIRMED_WINDOW_SECS, LISTED};
use kippu_app::ports::{WriteCounts, WriteState};
use kippu_domain::outbox::{RecordedWrite, Stage};
use kippu_domain::staff::{Permission, Target};
use std::collections::HashMap;

/// What a write confirmed once and now missing from the chain says.
const GONE: &str = "confirmed, then gone from the chain — being sent again";

/// One summary figure: a state, its count, and the list it opens.
struct Figure {
    state: &'static str,
    label: String,
    count: u64,
}

struct Row {
    kind: &'static str,
    id: String,
    /// The write's state as a person reads it (`pending`, `stuck`, `failed`, `gone`, `confirmed`).
    state: &'static str,
    stage: String,
    attempts: u32,
    nonce: String,
    /// The latest transaction: shortened, and in full.
    tx: Option<(String, String)>,
    age: String,
    created: String,
    /// How long ago it last changed, and when.
    updated_ago: String,
    updated: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "portal_chain_writes.html")]
struct ChainWritesPage {
    figures: Vec<Figure>,
    /// The counts as bars (`None`: every count is zero, nothing to draw).
    chart: Option<String>,
    /// The state listed.
    state: &'static str,
    states: Vec<&'static str>,
    rows: Vec<Row>,
    limit: i64,
    stuck_after: u32,
    gone: u64,
    failed: u64,
    stuck: u64,
    chain_id: u64,
}

/// How long ago, in the largest whole unit: `45 s`, `3 min`, `2 h`, `5 d`.
fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// `0x12ab…cdef`: enough to tell transactions apart on a page.
fn short_hash(h: &[u8; 32]) -> (String, String) {
    let full = format!("0x{}", hex::encode(h));
    (format!("{}…{}", &full[..6], &full[full.len() - 4..]), full)
}

fn row(w: &RecordedWrite, s: &AppState, now: i64) -> Row {
    let state = state_of(&w.write, &s.outbox_policy);
    let (stage, tx) = match &w.write.stage {
        Stage::Recorded => ("recorded".to_owned(), None),
        Stage::Sent { tx, .. } => ("sent".to_owned(), Some(short_hash(tx))),
        Stage::Included { tx, block, .. } => (format!("included · block {block}"), Some(short_hash(tx))),
        Stage::Confirmed { tx, block } => (format!("confirmed · block {block}"), Some(short_hash(tx))),
        Stage::Failed { .. } => ("failed".to_owned(), None),
    };
    let reason = match (&w.write.stage, state) {
        (Stage::Failed { reason }, _) => reason.clone(),
        (_, WriteState::Gone) => GONE.to_owned(),
        (_, WriteState::Stuck) => format!("sent {} times, not yet confirmed", w.write.attempts),
        _ => String::new(),
    };
    Row {
        kind: w.write.key.kind.as_str(),
        id: w.write.key.id.clone(),
        state: state.as_str(),
        stage,
        attempts: w.write.attempts,
        nonce: w.nonce.map_or_else(|| "—".to_owned(), |n| n.to_string()),
        tx,
        age: age(now - w.created_at),
        created: fmt_time(w.created_at),
        updated_ago: format!("{} ago", age(now - w.updated_at)),
        updated: fmt_time(w.updated_at),
        reason,
    }
}

/// The summary figures, in the order the page and its chart show them, each with its colour.
fn figures(c: &WriteCounts) -> Vec<(Figure, &'static str)> {
    let hours = CONFIRMED_WINDOW_SECS / 3_600;
    [
        (WriteState::Pending, "Pending".to_owned(), c.pending(), "#1570ef"),
        (WriteState::Stuck, "Stuck".to_owned(), c.stuck, "#f5a524"),
        (WriteState::Failed, "Failed".to_owned(), c.failed, "#b42318"),
        (WriteState::Gone, "Gone from chain".to_owned(), c.gone, "#7a5af8"),
        (WriteState::Confirmed, format!("Confirmed ({hours} h)"), c.confirmed, "#0b6e4f"),
    ]
    .into_iter()
    .map(|(state, label, count, colour)| (Figure { state: state.as_str(), label, count }, colour))
    .collect()
}

/// `GET /portal/chain-writes[?state=pending|stuck|failed|gone|confirmed|all]`: the consortium's
/// admins and auditors (whoever may read the whole audit log).
pub(crate) async fn list(staff: Staff, State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Page {
    staff.may(Permission::AuditRead, Target::Consortium)?;
    let state = match q.get("state").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => WriteState::All,
        Some(v) => v.parse::<WriteState>().map_err(AppError::BadRequest)?,
    };
    let now = now();
    let o = overview(&*s.chain_writes, state, &s.outbox_policy, now).await?;
    let (figures, colours): (Vec<_>, Vec<_>) = figures(&o.counts).into_iter().unzip();
    let bars: Vec<(String, i64)> =
        figures.iter().map(|f| (f.label.clone(), i64::try_from(f.count).unwrap_or(i64::MAX))).collect();
    html(ChainWritesPage {
        chart: bars
            .iter()
            .any(|(_, n)| *n > 0)
            .then(|| crate::chart::bars_coloured(&bars, &colours, "Chain writes by state", |v| v.to_string())),
        figures,
        state: state.as_str(),
        states: WriteState::ALL.map(WriteState::as_str).to_vec(),
        rows: o.writes.iter().map(|w| row(w, &s, now)).collect(),
        limit: LISTED,
        stuck_after: s.outbox_policy.stuck_after_attempts,
        gone: o.counts.gone,
        failed: o.counts.failed,
        stuck: o.counts.stuck,
        chain_id: s.chain.chain_id(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(super::age(-5), "0 s");
        assert_eq!(super::age(45), "45 s");
        assert_eq!(super::age(200), "3 min");
        assert_eq!(super::age(7_300), "2 h");
        assert_eq!(super::age(5 * 86_400 + 10), "5 d");
    }

    #[test]
    fn hashes_are_shortened_with_the_full_one_kept() {
        let (short, full) = super::short_hash(&[0xab; 32]);
        assert_eq!(short, "0xabab…abab");
        assert_eq!(full.len(), 66);
    }
}
