//! Delay insurance: a GTFS-Realtime feed in, vouchers out. A voucher goes to
//! each insured traveler whose policy covers now and whose plan holds a ticket
//! valid with the delayed trip's operator. The database claim (delay id,
//! policy) and the contract's own once-per-policy-per-delay rule both stop a
//! duplicated or repeated feed from paying twice.

use alloy::primitives::B256;
use kippu_chain::{Chain, ChainError};
use kippu_gtfs::{affected, delay_minutes, FeedGuard};
use kippu_store::Store;
use kippu_web::DelayOutcome;

use crate::seed::route_operator;

/// Turns delays into vouchers.
#[derive(Clone)]
pub struct DelayInsurer {
    store: Store,
    threshold_minutes: u32,
    /// Routes and schedules of every current timetable; extended when an operator imports a new feed.
    timetables: std::sync::Arc<std::sync::RwLock<Timetables>>,
    /// The oracle keys this process reports with (k-of-n: the contract counts distinct reporters).
    reporters: Vec<Chain>,
    /// Freshness and order of the delay feed; shared by every path a feed arrives by.
    guard: std::sync::Arc<std::sync::Mutex<FeedGuard>>,
}

impl DelayInsurer {
    /// An insurer using `timetable` (a GTFS zip) to find each trip's route.
    pub fn new(
        store: Store,
        threshold_minutes: u32,
        feed_max_age_secs: u64,
        reporters: Vec<Chain>,
        timetables: Vec<kippu_gtfs::Timetable>,
    ) -> anyhow::Result<Self> {
        let mut merged = Timetables::default();
        for t in timetables {
            merged.add(t);
        }
        let timetables = std::sync::Arc::new(std::sync::RwLock::new(merged));
        // 30 s of clock skew between the producer and us is tolerated.
        let guard = std::sync::Arc::new(std::sync::Mutex::new(FeedGuard::new(feed_max_age_secs, 30)));
        Ok(Self { store, threshold_minutes, timetables, reporters, guard })
    }

    /// Takes in a newly imported timetable (its trips replace same-id trips).
    pub fn add_timetable(&self, t: kippu_gtfs::Timetable) {
        self.timetables.write().expect("timetables").add(t);
    }

    /// Processes one GTFS-Realtime message.
    pub async fn ingest(&self, feed: &[u8], now: i64) -> anyhow::Result<DelayOutcome> {
        let screened = self.guard.lock().expect("feed guard").accept(feed, now.max(0) as u64);
        let accepted = match screened {
            Ok(a) => a,
            Err(rejection) => {
                metrics::counter!("kippu_delay_feeds_rejected_total", "reason" => rejection_code(&rejection))
                    .increment(1);
                tracing::warn!(%rejection, "delay feed refused");
                return Ok(DelayOutcome { rejected: Some(rejection.to_string()), ..Default::default() });
            }
        };
        let delays = accepted.delays;
        let mut out = DelayOutcome { trips: delays.len(), superseded: accepted.superseded, ..Default::default() };
        for mut d in delays {
            let (known_route, scheduled_delay) = {
                let tt = self.timetables.read().expect("timetables");
                (tt.routes.get(&d.trip_id).cloned(), tt.schedules.get(&d.trip_id).and_then(|s| s.delay_of(&d)))
            };
            // Producers that send absolute times rather than delays are measured against the timetable.
            if let Some(late) = scheduled_delay {
                d.delay_secs = d.delay_secs.max(late);
            }
            if !affected(&d, self.threshold_minutes) {
                continue;
            }
            out.delayed += 1;
            let route = d.route_id.clone().or(known_route);
            let Some(operator) = route.as_deref().and_then(route_operator) else {
                tracing::warn!(trip = %d.trip_id, "delay on a trip of no known route; ignored");
                continue;
            };
            let delay_id = B256::from(d.delay_id());
            let minutes = delay_minutes(d.delay_secs);
            let route_label = route.as_deref().unwrap_or("?");
            self.store.record_delay(&format!("{delay_id:#x}"), &d.trip_id, route_label, minutes, now).await?;
            for policy in self.store.active_policies(now).await? {
                // The policy is the plan's insurance leg; cover extends to that plan's legs only.
                let Some(plan) = self.store.ticket(policy.policy_id).await?.map(|t| t.plan_id) else { continue };
                let covered = self.store.tickets_of(&policy.holder).await?.iter().any(|t| {
                    t.plan_id == plan
                        && t.id != policy.policy_id
                        && t.operator_id == operator
                        && t.valid_from <= now
                        && now < t.valid_until
                });
                if !covered {
                    continue;
                }
                let key = format!("{delay_id:#x}");
                if !self.store.claim_delay(&key, policy.policy_id, &d.trip_id, minutes).await? {
                    continue;
                }
                // Every reporter this process holds a key of votes; the contract pays once k have.
                let mut status = "voted";
                for reporter in &self.reporters {
                    match reporter.report_delay(delay_id, policy.policy_id, minutes).await {
                        Ok(Some(voucher)) => {
                            tracing::info!(trip = %d.trip_id, policy = policy.policy_id, voucher, minutes, "voucher issued");
                            out.vouchers.push(voucher);
                            status = "voucher";
                            break;
                        }
                        Ok(None) => {
                            tracing::info!(trip = %d.trip_id, policy = policy.policy_id, reporter = %reporter.admin(), "delay vote recorded, below quorum")
                        }
                        Err(ChainError::Revert(r)) => {
                            tracing::warn!(trip = %d.trip_id, policy = policy.policy_id, revert = %r, "delay report refused");
                            status = "refused";
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                self.store.set_claim_status(&key, policy.policy_id, status).await?;
            }
        }
        Ok(out)
    }
}

fn rejection_code(r: &kippu_gtfs::FeedRejection) -> &'static str {
    use kippu_gtfs::FeedRejection::*;
    match r {
        Malformed(_) => "malformed",
        NoTimestamp => "no_timestamp",
        Duplicate(_) => "duplicate",
        OutOfOrder { .. } => "out_of_order",
        Stale { .. } => "stale",
        FromTheFuture { .. } => "future",
    }
}

/// Polls a GTFS-Realtime URL every `every` and hands each message to the insurer;
/// the guard turns an unchanged feed into a no-op (duplicate), so polling often is safe.
pub async fn poll(insurer: DelayInsurer, url: String, every: std::time::Duration) {
    let http = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "delay feed poller not started"),
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let bytes = match http.get(&url).send().await.and_then(|r| r.error_for_status()) {
            Ok(r) => match r.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%url, error = %e, "delay feed body unreadable");
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(%url, error = %e, "delay feed unreachable");
                continue;
            }
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        match insurer.ingest(&bytes, now).await {
            Ok(out) if out.rejected.is_none() => {
                tracing::info!(
                    trips = out.trips,
                    delayed = out.delayed,
                    vouchers = out.vouchers.len(),
                    "delay feed polled"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "delay feed processing failed; next poll retries"),
        }
    }
}

/// Every operator's current timetable, merged by trip id.
#[derive(Default)]
struct Timetables {
    routes: std::collections::HashMap<String, String>,
    schedules: std::collections::HashMap<String, std::sync::Arc<kippu_gtfs::TripSchedule>>,
}

impl Timetables {
    fn add(&mut self, t: kippu_gtfs::Timetable) {
        self.routes.extend(t.trip_routes);
        self.schedules.extend(t.schedules);
    }
}
