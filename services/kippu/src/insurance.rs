//! Delay insurance: a GTFS-Realtime feed in, vouchers out.
//!
//! A voucher goes to an insured plan when one of its tickets makes the traveler
//! *affected* by a late or cancelled run ([`kippu_gtfs::affected_by`]): they
//! tapped onto it (an on-board validator names the run), or they tapped in at a
//! stop gate the run then cancelled or skipped and no vehicle carried them since.
//! The ticket must be valid with the run's operator and, if its product names
//! routes, on the run's route. Each insured product has its own terms (threshold,
//! voucher, caps); the contract holds the same terms and enforces them. The
//! database claim (run, policy) and the contract's once-per-policy-per-run rule
//! both stop a repeated feed from paying twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use alloy::primitives::B256;
use kippu_app::insurance::DelayOutcome;
use kippu_chain::{Chain, ChainError, ContractRejection};
use kippu_gtfs::{affected, affected_by, delay_minutes, Accepted, FeedGuard, RiderIndex, RiderTap, Windows};
use kippu_store::{CoverTerms, Product, Store};

/// Turns delays into vouchers.
#[derive(Clone)]
pub struct DelayInsurer {
    store: Store,
    /// Threshold of policies whose product has no terms of its own (the contract's global terms).
    default_threshold: u32,
    windows: Windows,
    /// Routes, operators and schedules of every current timetable; extended when an operator imports a new feed.
    timetables: Arc<RwLock<Timetables>>,
    /// The oracle keys this process reports with (k-of-n: the contract counts distinct reporters).
    reporters: Vec<Chain>,
    /// Freshness and order of the delay feed; shared by every path a feed arrives by.
    guard: Arc<Mutex<FeedGuard>>,
}

impl DelayInsurer {
    /// An insurer matching delays against `timetables` (`(operator id, timetable)`).
    pub fn new(
        store: Store,
        default_threshold: u32,
        feed_max_age_secs: u64,
        reporters: Vec<Chain>,
        timetables: Vec<(u32, kippu_gtfs::Timetable)>,
    ) -> Self {
        let mut merged = Timetables::default();
        for (operator, t) in timetables {
            merged.add(operator, t);
        }
        // 30 s of clock skew between the producer and us is tolerated.
        let guard = Arc::new(Mutex::new(FeedGuard::new(feed_max_age_secs, 30)));
        Self {
            store,
            default_threshold,
            windows: Windows::default(),
            timetables: Arc::new(RwLock::new(merged)),
            reporters,
            guard,
        }
    }

    /// Takes in an operator's newly imported timetable (its trips replace same-id trips).
    pub fn add_timetable(&self, operator_id: u32, t: kippu_gtfs::Timetable) {
        self.timetables.write().expect("timetables").add(operator_id, t);
    }

    /// The runs of an operator's current timetable, `(trip id, route id)`, by trip id
    /// (numerically where the ids are numbers).
    pub fn runs_of(&self, operator_id: u32) -> Vec<(String, String)> {
        let tt = self.timetables.read().expect("timetables");
        let mut runs: Vec<(String, String)> = tt
            .trips
            .iter()
            .filter(|(_, r)| r.operator_id == operator_id)
            .map(|(trip, r)| (trip.clone(), r.route_id.clone()))
            .collect();
        runs.sort_by(|a, b| match (a.0.parse::<u64>(), b.0.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.0.cmp(&b.0),
        });
        runs
    }

    /// Processes one GTFS-Realtime message. If acting on it fails part-way (the chain or
    /// the database is unreachable), the message is released so that, sent or polled
    /// again, it is processed again; claims already settled are not repeated.
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
        match self.act_on(&accepted, now).await {
            Ok(out) => Ok(out),
            Err(e) => {
                self.guard.lock().expect("feed guard").release(&accepted);
                Err(e)
            }
        }
    }

    async fn act_on(&self, accepted: &Accepted, now: i64) -> anyhow::Result<DelayOutcome> {
        let mut out = DelayOutcome {
            trips: accepted.delays.len(),
            superseded: accepted.superseded,
            alerts: accepted.alerts.len(),
            ..Default::default()
        };
        let alerts: Vec<(String, String)> = accepted
            .alerts
            .iter()
            .map(|a| Ok((a.id.clone(), serde_json::to_string(a)?)))
            .collect::<serde_json::Result<_>>()?;
        self.store.replace_alerts(&alerts, now).await?;

        let terms: HashMap<u32, CoverTerms> =
            self.store.cover_terms().await?.into_iter().map(|t| (t.product_id, t)).collect();
        let products: HashMap<u32, Product> = self.store.products().await?.into_iter().map(|p| (p.id, p)).collect();
        let min_threshold = terms.values().map(|t| t.threshold_minutes).min().unwrap_or(self.default_threshold);
        let riders =
            RiderIndex::new(self.store.plan_taps_since(now - self.windows.ride_secs).await?.into_iter().map(|t| {
                let tap = RiderTap {
                    ticket_id: t.ticket_id,
                    at: t.at,
                    trip_id: t.trip_id,
                    trip_date: t.trip_date,
                    stop_id: t.stop_id,
                };
                (t.plan_id, tap, (t.operator_id, t.product_id))
            }));
        let insured = self.store.insured_plans(now).await?;

        for d in &accepted.delays {
            let mut d = d.clone();
            let (run, stops) = {
                let tt = self.timetables.read().expect("timetables");
                let run = tt.trips.get(&d.trip_id).cloned();
                // Producers that send absolute times rather than delays are measured against the timetable.
                if let Some(late) = run.as_ref().and_then(|r| r.schedule.as_ref()?.delay_of(&d)) {
                    d.delay_secs = d.delay_secs.max(late);
                }
                let stops: Vec<String> = run
                    .as_ref()
                    .and_then(|r| r.schedule.as_ref())
                    .map(|s| s.stops.iter().map(|(_, stop, _)| stop.clone()).collect())
                    .unwrap_or_default();
                (run, stops)
            };
            let stranding = d.cancelled || !d.skipped_stops.is_empty();
            if !stranding && !affected(&d, min_threshold) {
                continue;
            }
            out.delayed += 1;
            out.cancelled += usize::from(d.cancelled);
            let Some(run) = run
                .or_else(|| {
                    // A run of a timetable we do not hold: its route id, if sent, can place it...
                    d.route_id.as_ref().and_then(|r| self.timetables.read().expect("timetables").route_operator(r))
                })
                .or_else(|| {
                    // ...or an on-board validator that declared it: the vehicle is that operator's.
                    riders.declared_by(&d.trip_id).map(|&(operator_id, _)| Run {
                        operator_id,
                        route_id: String::new(),
                        schedule: None,
                    })
                })
            else {
                tracing::warn!(trip = %d.trip_id, "delay on a trip of no known timetable; ignored");
                continue;
            };
            let route = d.route_id.clone().unwrap_or_else(|| run.route_id.clone());
            let delay_id = B256::from(d.delay_id());
            let key = format!("{delay_id:#x}");
            let route_label = if route.is_empty() { "(no timetable)" } else { route.as_str() };
            self.store
                .record_delay(&key, &d.trip_id, route_label, delay_minutes(d.delay_secs), d.cancelled, now)
                .await?;
            let stop_refs: Vec<&str> = stops.iter().map(String::as_str).collect();

            let near = riders.plans_near(&d, &stop_refs);
            for policy in insured.iter().filter(|p| near.binary_search(&p.plan_id).is_ok()) {
                let cover = terms.get(&policy.product_id);
                let threshold = cover.map_or(self.default_threshold, |t| t.threshold_minutes);
                // Taps with tickets of this plan that are valid on this run's operator and route.
                let taps: Vec<RiderTap> = riders
                    .of_plan(policy.plan_id)
                    .filter(|(_, (operator, product))| {
                        // An unknown route is the run's own vehicle's word: its validator accepted the ticket.
                        *operator == run.operator_id
                            && products.get(product).is_some_and(|p| route.is_empty() || p.covers_route(&route))
                    })
                    .map(|(tap, _)| tap.clone())
                    .collect();
                let Some((why, tap)) = affected_by(&d, &stop_refs, &taps, now, threshold, self.windows) else {
                    continue;
                };
                // A stranded traveler's wait is at least the threshold: the contract needs a delay it pays on.
                let minutes = delay_minutes(d.delay_secs).max(if stranding { threshold } else { 0 });
                if !self.store.claim_delay(&key, policy.policy_id, &d.trip_id, minutes, why.as_str()).await? {
                    continue;
                }
                tracing::info!(trip = %d.trip_id, policy = policy.policy_id, ticket = tap.ticket_id, reason = why.as_str(), minutes, "affected traveler");
                out.affected.push((policy.policy_id, why.as_str().to_owned()));
                let status = self.report(delay_id, policy.policy_id, minutes, &mut out).await?;
                self.store.set_claim_status(&key, policy.policy_id, status).await?;
            }
        }
        Ok(out)
    }

    /// Every reporter this process holds a key of votes; the contract pays once k have.
    async fn report(
        &self,
        delay_id: B256,
        policy_id: u64,
        minutes: u32,
        out: &mut DelayOutcome,
    ) -> anyhow::Result<&'static str> {
        let mut status = "voted";
        for reporter in &self.reporters {
            match reporter.report_delay(delay_id, policy_id, minutes).await {
                Ok(Some(voucher)) => {
                    tracing::info!(policy = policy_id, voucher, minutes, "voucher issued");
                    out.vouchers.push(voucher);
                    return Ok("voucher");
                }
                Ok(None) => {
                    tracing::info!(policy = policy_id, reporter = %reporter.admin(), "delay vote recorded, below quorum")
                }
                // This reporter's vote is on chain already (an earlier attempt whose receipt was
                // lost, or a retry after a later reporter failed): counted, ask the next one.
                Err(ChainError::Rejected(ContractRejection::AlreadyVoted { .. })) => {
                    tracing::info!(policy = policy_id, reporter = %reporter.admin(), "delay vote already on chain")
                }
                // The voucher was issued by an earlier attempt whose receipt was lost.
                Err(ChainError::Rejected(ContractRejection::AlreadyCompensated { .. })) => {
                    tracing::info!(policy = policy_id, "delay already compensated on chain");
                    return Ok("voucher");
                }
                Err(ChainError::Rejected(r)) if r.is_voucher_cap() => {
                    tracing::warn!(policy = policy_id, revert = %r, "voucher capped by the product's terms");
                    out.capped += 1;
                    return Ok("capped");
                }
                // Any other refusal (below the threshold, not covered, …), or a revert no Kippu
                // error names: this claim gets nothing.
                Err(e @ (ChainError::Rejected(_) | ChainError::Reverted { .. })) => {
                    tracing::warn!(policy = policy_id, revert = %e, "delay report refused");
                    status = "refused";
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(status)
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

/// One poll of a GTFS-Realtime URL, handed to the insurer (the `delay_feed` job runs it on
/// `insurance.poll_secs`); the guard turns an unchanged feed into a no-op (duplicate), so
/// polling often is safe. An unreachable feed fails the round, for the supervisor to retry.
pub async fn poll_once(insurer: &DelayInsurer, http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let bytes = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("delay feed {url} unreachable"))?
        .bytes()
        .await
        .with_context(|| format!("delay feed {url}: body unreadable"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let out = insurer.ingest(&bytes, now).await?;
    if out.rejected.is_none() {
        tracing::info!(trips = out.trips, delayed = out.delayed, vouchers = out.vouchers.len(), "delay feed polled");
    }
    Ok(())
}

/// One trip of a timetable: whose, on which route, when.
#[derive(Clone)]
struct Run {
    operator_id: u32,
    route_id: String,
    /// `None` for a run known only by its route id.
    schedule: Option<Arc<kippu_gtfs::TripSchedule>>,
}

/// Every operator's current timetable, merged by trip id.
#[derive(Default)]
struct Timetables {
    trips: HashMap<String, Run>,
    routes: HashMap<String, u32>,
}

impl Timetables {
    fn add(&mut self, operator_id: u32, t: kippu_gtfs::Timetable) {
        for route in t.summary.routes.keys() {
            self.routes.insert(route.clone(), operator_id);
        }
        for (trip, route_id) in t.trip_routes {
            let Some(schedule) = t.schedules.get(&trip).cloned() else { continue };
            self.trips.insert(trip, Run { operator_id, route_id, schedule: Some(schedule) });
        }
    }

    /// A run known only by its route: no schedule, so only riders who tapped onto it can be matched.
    fn route_operator(&self, route_id: &str) -> Option<Run> {
        self.routes.get(route_id).map(|&operator_id| Run { operator_id, route_id: route_id.to_owned(), schedule: None })
    }
}
