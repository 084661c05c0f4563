//! Operators import their static GTFS feed. A refused feed is answered with everything wrong
//! in it, and the current timetable stays.

use base64::Engine as _;
use kippu_domain::model::Product;
use kippu_gtfs::TimetableSummary;

use crate::ports::{Clock, Notifier, Store};
use crate::PortError;

/// Held while a feed is imported: measuring and parsing a large feed takes seconds of CPU and
/// memory in proportion to it, so feeds are parsed one at a time.
static IMPORTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A timetable imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The operator's new timetable version.
    pub version: i64,
    /// What the feed holds.
    pub summary: TimetableSummary,
}

/// Why a feed was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportTimetableError {
    /// No such operator.
    #[error("No operator {slug:?}.")]
    UnknownOperator {
        /// The slug asked for.
        slug: String,
    },
    /// The feed is refused; the current timetable stays.
    #[error("the feed is refused: {}", .problems.join("; "))]
    Refused {
        /// Everything wrong with it.
        problems: Vec<String>,
        /// The operator's timetable version still in force, if any.
        current_version: Option<i64>,
    },
    /// Parsing could not finish, or the summary would not serialize.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Imports a GTFS zip as the operator's next timetable version. Off the async workers and one
/// at a time (bounded by `kippu_gtfs::ImportLimits::DEFAULT`); a feed that drops a route or
/// zone one of the operator's products is sold for is refused, since it would strand them.
/// Once stored, the insurer's matcher learns the new trips at once.
pub async fn import_timetable(
    store: &dyn Store,
    notifier: &dyn Notifier,
    clock: &dyn Clock,
    operator_slug: &str,
    zip: Vec<u8>,
) -> Result<Imported, ImportTimetableError> {
    let Some(operator) = store.operators().await?.into_iter().find(|o| o.slug == operator_slug) else {
        return Err(ImportTimetableError::UnknownOperator { slug: operator_slug.to_owned() });
    };
    let current =
        store.current_timetables().await?.into_iter().find(|t| t.operator_slug == operator_slug).map(|t| t.version);
    let products = store.products().await?;
    let (zip, parsed) = {
        let _one_at_a_time = IMPORTING.lock().await;
        tokio::task::spawn_blocking(move || {
            let parsed = kippu_gtfs::import_timetable(&zip);
            (zip, parsed)
        })
        .await
        .map_err(|e| ImportTimetableError::Internal(format!("timetable import: {e}")))?
    };
    let imported = parsed.and_then(|t| {
        let problems = products_left_without_network(&products, operator.id, &t.summary);
        if problems.is_empty() {
            Ok(t)
        } else {
            Err(kippu_gtfs::ImportReport { problems })
        }
    });
    let timetable = match imported {
        Ok(t) => t,
        Err(report) => {
            tracing::warn!(operator = %operator_slug, problems = ?report.problems, "GTFS import refused; previous timetable kept");
            return Err(ImportTimetableError::Refused { problems: report.problems, current_version: current });
        }
    };
    let summary_text =
        serde_json::to_string(&timetable.summary).map_err(|e| ImportTimetableError::Internal(e.to_string()))?;
    let feed = base64::engine::general_purpose::STANDARD.encode(&zip);
    let version = store.save_timetable(operator_slug, &summary_text, &feed, clock.now()).await?;
    let summary = timetable.summary.clone();
    notifier.timetable_imported(operator.id, timetable).await;
    tracing::info!(operator = %operator_slug, version, trips = summary.trips, "GTFS timetable imported");
    Ok(Imported { version, summary })
}

/// Products of `operator_id` naming a route or zone that `summary` does not have.
pub fn products_left_without_network(
    products: &[Product],
    operator_id: u32,
    summary: &TimetableSummary,
) -> Vec<String> {
    let mut problems = Vec::new();
    for p in products.iter().filter(|p| p.operator_id == operator_id) {
        for r in p.routes.iter().filter(|r| !summary.routes.contains_key(*r)) {
            problems
                .push(format!("product {} ({}) is sold for route {r:?}, which this feed does not have", p.id, p.name));
        }
        for z in p.zones.iter().filter(|z| !summary.zones.contains(*z)) {
            problems
                .push(format!("product {} ({}) is sold for zone {z:?}, which this feed does not have", p.id, p.name));
        }
    }
    problems
}
