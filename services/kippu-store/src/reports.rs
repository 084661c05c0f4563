//! Operator settlement reports, straight from the double-entry ledger.
//!
//! Every figure is a sum of `ledger_postings` of one operator's account
//! (`operator:<id>`) joined to the `chain_events` that booked them, so a figure
//! can always be drilled down to the events behind it. The operator's account
//! is credit-normal (what the consortium owes the operator), so postings are
//! negated for display: a `LegSold` share (credit) raises what is owed, a
//! refund and a payout (debits) lower it.
//!
//! Days are UTC days of the block time (`block_time / 86400`, POSIX seconds),
//! rides (taps) use the gate's scan time. Events booked before block times
//! were recorded have no day (`None`). Clearing periods are found from the
//! `PeriodClosed` events: period `n` runs from just after the close of period
//! `n - 1` up to its own `PeriodClosed`, inclusive, so the close's voucher
//! settlements, claim moves and payouts belong to the period they close.
//!
//! Portable SQL (SQLite and PostgreSQL through `Any`): `$n` placeholders,
//! sums cast to `BIGINT`, integer day buckets.

use std::collections::{BTreeMap, HashMap};

use kippu_domain::events::ChainEvent;
use sqlx::Row;

use crate::{Result, Store, StoreError};

pub use kippu_domain::model::{
    operator_account, BundleShare, ChainPos, EventFilter, EventPage, OperatorDaily, OperatorDay, OperatorEvent, Period,
    RidePage, RideRow, Statement, DAY_SECS, OPERATOR_EVENT_KINDS,
};

/// Before every event: the lower bound of a period open from the start.
const CHAIN_START: ChainPos = ChainPos { block_number: -1, log_index: -1 };
/// After every event: the upper bound of a period still open.
const CHAIN_END: ChainPos = ChainPos { block_number: i64::MAX, log_index: i64::MAX };

/// Ticket to plan to bundle, for one operator's legs.
struct BundleResolver {
    plan_of_ticket: HashMap<u64, u64>,
    bundle_of_plan: HashMap<u64, (u32, String)>,
}

impl BundleResolver {
    /// The bundle (id, name) a `LegSold` or `TicketRefunded` payload belongs to.
    fn bundle_of(&self, payload: &str) -> Option<&(u32, String)> {
        let plan = match serde_json::from_str(payload).ok()? {
            ChainEvent::LegSold { plan_id, .. } => plan_id,
            ChainEvent::TicketRefunded { ticket_id, .. } => *self.plan_of_ticket.get(&ticket_id)?,
            _ => return None,
        };
        self.bundle_of_plan.get(&plan)
    }
}

/// `(block_number, log_index) > after AND <= until`, as SQL with parameters `$first..$first+3`.
fn range_sql(first: usize) -> String {
    format!(
        "(e.block_number > ${a} OR (e.block_number = ${a} AND e.log_index > ${b})) \
         AND (e.block_number < ${c} OR (e.block_number = ${c} AND e.log_index <= ${d}))",
        a = first,
        b = first + 1,
        c = first + 2,
        d = first + 3
    )
}

fn bounds(p: &Period) -> (ChainPos, ChainPos) {
    (p.after.unwrap_or(CHAIN_START), p.until.unwrap_or(CHAIN_END))
}

impl Store {
    /// One operator's figures per UTC day: legs sold and their revenue, refunds,
    /// vouchers redeemed and payouts from the ledger, rides from the taps.
    pub async fn operator_daily(&self, operator_id: u32) -> Result<OperatorDaily> {
        let account = operator_account(operator_id);
        let rows = sqlx::query(
            "SELECT e.block_time / 86400, e.kind, CAST(COUNT(*) AS BIGINT), CAST(SUM(p.amount) AS BIGINT)
             FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
             WHERE p.account = $1
             GROUP BY e.block_time / 86400, e.kind",
        )
        .bind(&account)
        .fetch_all(&self.pool)
        .await?;
        let mut days: BTreeMap<(bool, i64), OperatorDay> = BTreeMap::new();
        let mut balance = 0;
        for r in &rows {
            let day: Option<i64> = r.try_get(0)?;
            let kind: String = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
            let sum: i64 = r.try_get(3)?;
            balance -= sum;
            let d = days
                .entry((day.is_none(), day.unwrap_or(0)))
                .or_insert_with(|| OperatorDay { day, ..Default::default() });
            match kind.as_str() {
                "LegSold" => (d.legs, d.revenue) = (d.legs + n, d.revenue - sum),
                "TicketRefunded" => (d.refunds_count, d.refunds) = (d.refunds_count + n, d.refunds + sum),
                "VoucherRedeemed" => (d.vouchers_count, d.vouchers) = (d.vouchers_count + n, d.vouchers - sum),
                "VoucherSettled" => (d.cover_count, d.cover) = (d.cover_count + n, d.cover + sum),
                "ClaimMoved" => (d.adjustments_count, d.adjustments) = (d.adjustments_count + n, d.adjustments - sum),
                "Payout" => (d.payouts_count, d.payouts) = (d.payouts_count + n, d.payouts + sum),
                _ => return Err(StoreError::Corrupt("ledger_postings (unexpected event kind on an operator account)")),
            }
        }
        let taps = sqlx::query(
            "SELECT at / 86400, CAST(COUNT(*) AS BIGINT) FROM taps WHERE operator_id = $1 GROUP BY at / 86400",
        )
        .bind(i64::from(operator_id))
        .fetch_all(&self.pool)
        .await?;
        for r in &taps {
            let day: i64 = r.try_get(0)?;
            let d = days.entry((false, day)).or_insert_with(|| OperatorDay { day: Some(day), ..Default::default() });
            d.rides += r.try_get::<i64, _>(1)?;
        }
        Ok(OperatorDaily { days: days.into_values().collect(), balance })
    }

    /// Each bundle's part in one operator's revenue: its `LegSold` shares and the
    /// refunds of those legs, by the bundle of the plan each leg was sold in.
    pub async fn operator_bundles(&self, operator_id: u32) -> Result<Vec<BundleShare>> {
        let resolver = self.bundle_resolver(operator_id).await?;
        let rows = sqlx::query(
            "SELECT e.kind, e.payload, p.amount FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
             WHERE p.account = $1 AND e.kind IN ('LegSold', 'TicketRefunded')",
        )
        .bind(operator_account(operator_id))
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<Option<u32>, BundleShare> = BTreeMap::new();
        for r in &rows {
            let kind: String = r.try_get(0)?;
            let payload: String = r.try_get(1)?;
            let amount: i64 = r.try_get(2)?;
            let bundle = resolver.bundle_of(&payload);
            let key = bundle.map(|b| b.0);
            let e = out.entry(key).or_insert_with(|| BundleShare {
                bundle_id: key,
                name: bundle.map_or_else(|| "unknown plan".to_string(), |b| b.1.clone()),
                legs: 0,
                revenue: 0,
                refunds: 0,
            });
            if kind == "LegSold" {
                e.legs += 1;
                e.revenue -= amount;
            } else {
                e.refunds += amount;
            }
        }
        let mut v: Vec<_> = out.into_values().collect();
        v.sort_by(|a, b| b.net_revenue().cmp(&a.net_revenue()).then(a.bundle_id.cmp(&b.bundle_id)));
        Ok(v)
    }

    /// Which bundle each of an operator's legs was sold in: ticket to plan from the
    /// `LegSold` payloads (a refunded ticket is gone from `tickets`), plan to bundle
    /// from `plans`. Payloads are JSON, which SQLite and PostgreSQL read differently,
    /// so they are read here rather than in SQL.
    async fn bundle_resolver(&self, operator_id: u32) -> Result<BundleResolver> {
        let mut plan_of_ticket = HashMap::new();
        let sold = sqlx::query(
            "SELECT e.payload FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
             WHERE p.account = $1 AND e.kind = 'LegSold'",
        )
        .bind(operator_account(operator_id))
        .fetch_all(&self.pool)
        .await?;
        for r in &sold {
            if let Ok(ChainEvent::LegSold { plan_id, ticket_id, .. }) =
                serde_json::from_str(&r.try_get::<String, _>(0)?)
            {
                plan_of_ticket.insert(ticket_id, plan_id);
            }
        }
        let bundle_of_plan = sqlx::query(
            "SELECT pl.plan_id, pl.bundle_id, COALESCE(b.name, '') FROM plans pl LEFT JOIN bundles b ON b.id = pl.bundle_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let bundle = r.try_get::<i64, _>(1)? as u32;
            let name: String = r.try_get(2)?;
            let name = if name.is_empty() { format!("bundle {bundle}") } else { name };
            Ok((r.try_get::<i64, _>(0)? as u64, (bundle, name)))
        })
        .collect::<Result<_>>()?;
        Ok(BundleResolver { plan_of_ticket, bundle_of_plan })
    }

    /// The clearing periods the ledger knows of, oldest first: every closed period
    /// (one `PeriodClosed` each, also when nothing was owed), then the open one.
    pub async fn periods(&self) -> Result<Vec<Period>> {
        let rows = sqlx::query(
            "SELECT e.block_number, e.log_index, e.block_time, e.payload FROM chain_events e
             WHERE e.kind = 'PeriodClosed' ORDER BY e.block_number, e.log_index",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        let (mut after, mut opened_at, mut last) = (None, None, 0);
        for r in &rows {
            let until = ChainPos { block_number: r.try_get(0)?, log_index: r.try_get(1)? };
            let closed_at: Option<i64> = r.try_get(2)?;
            let payload: String = r.try_get(3)?;
            let Ok(ChainEvent::PeriodClosed { period_id, .. }) = serde_json::from_str(&payload) else {
                return Err(StoreError::Corrupt("chain_events.payload (PeriodClosed)"));
            };
            out.push(Period { period_id, after, until: Some(until), opened_at, closed_at });
            (after, opened_at, last) = (Some(until), closed_at, period_id);
        }
        out.push(Period { period_id: last + 1, after, until: None, opened_at, closed_at: None });
        Ok(out)
    }

    /// One period by id, if the ledger knows it.
    pub async fn period(&self, period_id: u64) -> Result<Option<Period>> {
        Ok(self.periods().await?.into_iter().find(|p| p.period_id == period_id))
    }

    /// One operator's statement for a period: what it was owed at the start, what the
    /// period booked by kind, and what it was owed at the end.
    pub async fn operator_statement(&self, operator_id: u32, period: &Period) -> Result<Statement> {
        let account = operator_account(operator_id);
        let (after, until) = bounds(period);
        let opening: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM ledger_postings p
             JOIN chain_events e ON e.event_key = p.event_key
             WHERE p.account = $1 AND (e.block_number < $2 OR (e.block_number = $2 AND e.log_index <= $3))",
        )
        .bind(&account)
        .bind(after.block_number)
        .bind(after.log_index)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT e.kind, CAST(COUNT(*) AS BIGINT), CAST(SUM(p.amount) AS BIGINT) FROM ledger_postings p
             JOIN chain_events e ON e.event_key = p.event_key
             WHERE p.account = $1 AND {} GROUP BY e.kind",
            range_sql(2)
        ))
        .bind(&account)
        .bind(after.block_number)
        .bind(after.log_index)
        .bind(until.block_number)
        .bind(until.log_index)
        .fetch_all(&self.pool)
        .await?;
        let mut s = Statement {
            period: *period,
            opening: -opening,
            revenue: 0,
            legs: 0,
            refunds: 0,
            refunds_count: 0,
            vouchers: 0,
            vouchers_count: 0,
            cover: 0,
            cover_count: 0,
            adjustments: 0,
            adjustments_count: 0,
            payouts: 0,
            payouts_count: 0,
            closing: -opening,
        };
        for r in &rows {
            let kind: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            let sum: i64 = r.try_get(2)?;
            s.closing -= sum;
            match kind.as_str() {
                "LegSold" => (s.legs, s.revenue) = (n, -sum),
                "TicketRefunded" => (s.refunds_count, s.refunds) = (n, sum),
                "VoucherRedeemed" => (s.vouchers_count, s.vouchers) = (n, -sum),
                "VoucherSettled" => (s.cover_count, s.cover) = (n, sum),
                "ClaimMoved" => (s.adjustments_count, s.adjustments) = (n, -sum),
                "Payout" => (s.payouts_count, s.payouts) = (n, sum),
                _ => return Err(StoreError::Corrupt("ledger_postings (unexpected event kind on an operator account)")),
            }
        }
        Ok(s)
    }

    /// The events behind one of an operator's figures, in chain order: `limit` of them
    /// from `offset` (all when `limit` is `None`), with the totals of all that match.
    pub async fn operator_events(
        &self,
        operator_id: u32,
        filter: &EventFilter,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<EventPage> {
        let mut conds = vec!["p.account = $1".to_string()];
        let mut n = 1;
        if !filter.kinds.is_empty() {
            let params: Vec<String> = (0..filter.kinds.len()).map(|i| format!("${}", n + 1 + i)).collect();
            n += filter.kinds.len();
            conds.push(format!("e.kind IN ({})", params.join(", ")));
        }
        match filter.day {
            Some(Some(_)) => {
                n += 1;
                conds.push(format!("e.block_time / 86400 = ${n}"));
            }
            Some(None) => conds.push("e.block_time IS NULL".into()),
            None => {}
        }
        if filter.period.is_some() {
            conds.push(range_sql(n + 1));
            n += 4;
        }
        if filter.bundle.is_some() {
            conds.push("e.kind IN ('LegSold', 'TicketRefunded')".into());
        }
        let from = format!(
            "FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key WHERE {}",
            conds.join(" AND ")
        );
        let columns = "e.event_key, e.kind, e.block_number, e.log_index, e.block_time, e.tx_hash, p.amount, e.payload";
        let order = "ORDER BY e.block_number, e.log_index";
        // A bundle is only known from the payloads: filter all matching rows here, then page.
        let paged_in_sql = limit.is_some() && filter.bundle.is_none();
        let rows_sql = if paged_in_sql {
            format!("SELECT {columns} {from} {order} LIMIT ${} OFFSET ${}", n + 1, n + 2)
        } else {
            format!("SELECT {columns} {from} {order}")
        };
        let account = operator_account(operator_id);
        // The same binds, in the same order, for both queries.
        macro_rules! bind_filter {
            ($q:expr) => {{
                let mut q = $q.bind(account.clone());
                for k in &filter.kinds {
                    q = q.bind(k.clone());
                }
                if let Some(Some(d)) = filter.day {
                    q = q.bind(d);
                }
                if let Some(p) = &filter.period {
                    let (a, u) = bounds(p);
                    q = q.bind(a.block_number).bind(a.log_index).bind(u.block_number).bind(u.log_index);
                }
                q
            }};
        }
        let mut q = bind_filter!(sqlx::query(&rows_sql));
        if let (true, Some(l)) = (paged_in_sql, limit) {
            q = q.bind(l).bind(offset);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let resolver = match filter.bundle {
            Some(_) => Some(self.bundle_resolver(operator_id).await?),
            None => None,
        };
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            if let (Some(res), Some(b)) = (&resolver, filter.bundle) {
                if res.bundle_of(&r.try_get::<String, _>(7)?).map(|x| x.0) != Some(b) {
                    continue;
                }
            }
            events.push(OperatorEvent {
                event_key: r.try_get(0)?,
                kind: r.try_get(1)?,
                block_number: r.try_get(2)?,
                log_index: r.try_get(3)?,
                block_time: r.try_get(4)?,
                tx_hash: r.try_get(5)?,
                posting: r.try_get(6)?,
            });
        }
        if paged_in_sql {
            let totals_sql =
                format!("SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) {from}");
            let totals = bind_filter!(sqlx::query(&totals_sql)).fetch_one(&self.pool).await?;
            return Ok(EventPage { events, total_count: totals.try_get(0)?, total_posting: totals.try_get(1)? });
        }
        let (total_count, total_posting) = (events.len() as i64, events.iter().map(|e| e.posting).sum());
        if let Some(l) = limit {
            events = events.into_iter().skip(offset.max(0) as usize).take(l.max(0) as usize).collect();
        }
        Ok(EventPage { events, total_count, total_posting })
    }

    /// The rides (taps) behind a rides figure, oldest first: `limit` from `offset`
    /// (all when `None`), on one UTC day (days since the epoch) or all days.
    pub async fn operator_rides(
        &self,
        operator_id: u32,
        day: Option<i64>,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<RidePage> {
        let cond = if day.is_some() { "operator_id = $1 AND at / 86400 = $2" } else { "operator_id = $1" };
        let next = if day.is_some() { 3 } else { 2 };
        let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM taps WHERE {cond}");
        let mut count = sqlx::query_scalar(&count_sql).bind(i64::from(operator_id));
        if let Some(d) = day {
            count = count.bind(d);
        }
        let total: i64 = count.fetch_one(&self.pool).await?;
        let page = match limit {
            Some(_) => format!("LIMIT ${} OFFSET ${}", next, next + 1),
            None => String::new(),
        };
        let sql = format!(
            "SELECT scan_id, ticket_id, gate_key, at, trip_id, batch_id FROM taps WHERE {cond} ORDER BY at, scan_id {page}"
        );
        let mut q = sqlx::query(&sql).bind(i64::from(operator_id));
        if let Some(d) = day {
            q = q.bind(d);
        }
        if let Some(l) = limit {
            q = q.bind(l).bind(offset);
        }
        let rides = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(RideRow {
                    scan_id: r.try_get(0)?,
                    ticket_id: r.try_get::<i64, _>(1)? as u64,
                    gate_key: r.try_get(2)?,
                    at: r.try_get(3)?,
                    trip_id: r.try_get(4)?,
                    batch_id: r.try_get(5)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(RidePage { rides, total_count: total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, B256};
    use kippu_domain::events::EventMeta;

    fn meta(block: u64, log: u64) -> EventMeta {
        EventMeta {
            block_number: block,
            block_hash: B256::repeat_byte(block as u8),
            log_index: log,
            tx_hash: B256::repeat_byte(0x80 | block as u8),
        }
    }

    async fn store() -> Store {
        let dir = std::env::temp_dir().join(format!("kippu-reports-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        Store::connect(&format!("sqlite://{}", dir.join("t.db").display())).await.unwrap()
    }

    /// Two days, a refund, a voucher, two closes: figures, bundles, periods, statements and
    /// drill-downs all agree with the postings.
    #[tokio::test]
    async fn figures_periods_and_drill_down_agree() {
        let s = store().await;
        s.upsert_bundle(&crate::Bundle {
            id: 1,
            name: "Explorer".into(),
            description: String::new(),
            discount_bps: 0,
            product_ids: vec![201],
        })
        .await
        .unwrap();
        let t = Address::repeat_byte(1);
        let d0 = 20_000 * DAY_SECS;
        let bus = 2;
        let sold = |plan, ticket, share| ChainEvent::LegSold {
            plan_id: plan,
            ticket_id: ticket,
            operator_id: bus,
            product_id: 201,
            share,
        };
        let plan =
            |plan| ChainEvent::PlanPurchased { plan_id: plan, traveler: t, bundle_id: 1, price: 900, valid_from: 0 };
        let events = vec![
            (meta(1, 0), plan(1)),
            (meta(1, 1), sold(1, 10, 500)),
            (meta(2, 0), plan(2)),
            (meta(2, 1), sold(2, 11, 400)),
            (meta(3, 0), ChainEvent::TicketRefunded { ticket_id: 11, traveler: t, operator_id: bus, amount: 320 }),
            (meta(3, 1), ChainEvent::VoucherRedeemed { voucher_id: 1, operator_id: bus, value: 150 }),
            (meta(4, 0), ChainEvent::Payout { period_id: 1, operator_id: bus, payee: t, amount: 580 }),
            (meta(4, 1), ChainEvent::PeriodClosed { period_id: 1, total_paid: 580 }),
            (meta(5, 0), plan(3)),
            (meta(5, 1), sold(3, 12, 700)),
            // Usage apportionment at the second close gives 30 of the bus's booked share to the metro.
            (meta(6, 0), ChainEvent::ClaimMoved { period_id: 2, from_operator: bus, to_operator: 1, amount: 30 }),
            (meta(6, 1), ChainEvent::Payout { period_id: 2, operator_id: bus, payee: t, amount: 670 }),
            (meta(6, 2), ChainEvent::PeriodClosed { period_id: 2, total_paid: 700 }),
            (meta(7, 0), ChainEvent::VoucherRedeemed { voucher_id: 2, operator_id: bus, value: 50 }),
        ];
        let blocks: Vec<_> = (1..=7u64)
            .map(|n| (n, B256::repeat_byte(n as u8), if n < 5 { d0 + n as i64 } else { d0 + DAY_SECS + n as i64 }))
            .collect();
        s.apply_events("test", 8, &events, &blocks).await.unwrap();

        let daily = s.operator_daily(bus).await.unwrap();
        assert_eq!(daily.days.len(), 2);
        let (a, b) = (&daily.days[0], &daily.days[1]);
        assert_eq!((a.day, a.legs, a.revenue, a.refunds, a.vouchers, a.payouts), (Some(20_000), 2, 900, 320, 150, 580));
        assert_eq!(
            (b.day, b.legs, b.revenue, b.refunds, b.vouchers, b.adjustments, b.payouts),
            (Some(20_001), 1, 700, 0, 50, -30, 670)
        );
        let totals = daily.totals();
        assert_eq!(totals.net_revenue(), 900 + 700 - 320);
        assert_eq!(daily.balance, -s.account_balance("operator:2").await.unwrap());
        assert_eq!(daily.balance, 200);

        let bundles = s.operator_bundles(bus).await.unwrap();
        assert_eq!(bundles.len(), 1);
        assert_eq!((bundles[0].name.as_str(), bundles[0].legs, bundles[0].net_revenue()), ("Explorer", 3, 1280));

        let periods = s.periods().await.unwrap();
        assert_eq!(
            periods.iter().map(|p| (p.period_id, p.closed())).collect::<Vec<_>>(),
            [(1, true), (2, true), (3, false)]
        );
        let mut opening = 0;
        for p in &periods {
            let st = s.operator_statement(bus, p).await.unwrap();
            assert_eq!(st.opening, opening, "period {}", p.period_id);
            assert_eq!(st.computed_closing(), st.closing, "period {}", p.period_id);
            opening = st.closing;
        }
        assert_eq!(opening, 200, "the last closing is the balance");
        let p1 = s.operator_statement(bus, &periods[0]).await.unwrap();
        assert_eq!((p1.revenue, p1.refunds, p1.vouchers, p1.payouts, p1.closing), (900, 320, 150, 580, 150));

        // Drill-down: everything, one kind, one day, one period, paged.
        let all = s.operator_events(bus, &EventFilter::default(), 0, None).await.unwrap();
        assert_eq!((all.total_count, all.events.len() as i64), (9, 9));
        assert_eq!(-all.total_posting, 200);
        let sold_day0 = EventFilter { kinds: vec!["LegSold".into()], day: Some(Some(20_000)), ..Default::default() };
        let page = s.operator_events(bus, &sold_day0, 0, Some(1)).await.unwrap();
        assert_eq!((page.total_count, -page.total_posting, page.events.len()), (2, 900, 1));
        let page2 = s.operator_events(bus, &sold_day0, 1, Some(1)).await.unwrap();
        assert_eq!(page2.events[0].owed_change(), 400);
        assert_ne!(page.events[0].event_key, page2.events[0].event_key);
        let in_p2 = EventFilter { period: Some(periods[1]), ..Default::default() };
        let p2 = s.operator_events(bus, &in_p2, 0, None).await.unwrap();
        assert_eq!(p2.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["LegSold", "ClaimMoved", "Payout"]);
        let explorer = EventFilter { bundle: Some(1), ..Default::default() };
        let e = s.operator_events(bus, &explorer, 1, Some(2)).await.unwrap();
        assert_eq!((e.total_count, -e.total_posting, e.events.len()), (4, 1280, 2));
        assert_eq!(e.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["LegSold", "TicketRefunded"]);
        let other = EventFilter { bundle: Some(2), ..Default::default() };
        assert_eq!(s.operator_events(bus, &other, 0, None).await.unwrap().total_count, 0);
        let net = EventFilter { kinds: vec!["LegSold".into(), "TicketRefunded".into()], ..Default::default() };
        assert_eq!(-s.operator_events(bus, &net, 0, None).await.unwrap().total_posting, totals.net_revenue());
        let undated = EventFilter { day: Some(None), ..Default::default() };
        assert_eq!(s.operator_events(bus, &undated, 0, None).await.unwrap().total_count, 0);
        assert_eq!(s.operator_rides(bus, Some(20_000), 0, None).await.unwrap().total_count, 0);
    }
}
