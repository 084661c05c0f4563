//! Delay insurance: a GTFS-Realtime feed in, vouchers out. A voucher goes to
//! each insured traveler whose policy covers now and whose plan holds a ticket
//! valid with the delayed trip's operator. The database claim (delay id,
//! policy) and the contract's own once-per-policy-per-delay rule both stop a
//! duplicated or repeated feed from paying twice.

use alloy::primitives::B256;
use kippu_chain::{Chain, ChainError};
use kippu_gtfs::{affected, decode_feed, delay_minutes};
use kippu_store::Store;
use kippu_web::DelayOutcome;

use crate::seed::route_operator;

/// Turns delays into vouchers.
#[derive(Clone)]
pub struct DelayInsurer {
    chain: Chain,
    store: Store,
    threshold_minutes: u32,
    trip_routes: std::collections::HashMap<String, String>,
}

impl DelayInsurer {
    /// An insurer using `timetable` (a GTFS zip) to find each trip's route.
    pub fn new(chain: Chain, store: Store, threshold_minutes: u32, timetable: &[u8]) -> anyhow::Result<Self> {
        let trip_routes = kippu_gtfs::load_trips(timetable)?.into_iter().map(|t| (t.trip_id, t.route_id)).collect();
        Ok(Self { chain, store, threshold_minutes, trip_routes })
    }

    /// Processes one GTFS-Realtime message.
    pub async fn ingest(&self, feed: &[u8], now: i64) -> anyhow::Result<DelayOutcome> {
        let delays = decode_feed(feed)?;
        let mut out = DelayOutcome { trips: delays.len(), ..Default::default() };
        for d in delays.iter().filter(|d| affected(d, self.threshold_minutes)) {
            out.delayed += 1;
            let route = d.route_id.clone().or_else(|| self.trip_routes.get(&d.trip_id).cloned());
            let Some(operator) = route.as_deref().and_then(route_operator) else {
                tracing::warn!(trip = %d.trip_id, "delay on a trip of no known route; ignored");
                continue;
            };
            let delay_id = B256::from(d.delay_id());
            let minutes = delay_minutes(d.delay_secs);
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
                match self.chain.report_delay(delay_id, policy.policy_id, minutes).await {
                    Ok(voucher) => {
                        self.store.set_claim_status(&key, policy.policy_id, "voucher").await?;
                        tracing::info!(trip = %d.trip_id, policy = policy.policy_id, voucher, minutes, "voucher issued");
                        out.vouchers.push(voucher);
                    }
                    Err(ChainError::Revert(r)) => {
                        self.store.set_claim_status(&key, policy.policy_id, "refused").await?;
                        tracing::warn!(trip = %d.trip_id, policy = policy.policy_id, revert = %r, "delay report refused");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(out)
    }
}
