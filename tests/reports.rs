//! Operator settlement reports against the chain they report on: plans bought, ridden,
//! refunded and covered by delay vouchers over two (chain) days and three clearing
//! periods; then every figure on an operator's report, its CSV and JSON exports, its
//! drill-downs and its period statements must equal what the contracts emitted
//! (read back from the chain, independently of the ledger), and statements must
//! reconcile. Staff only; unknown operators and bad parameters are refused with a
//! reason. Runs on SQLite and, with `make test`, on PostgreSQL + Mosquitto.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kippu::Config;
use kippu_domain::events::ChainEvent;
use kippu_domain::staff::Permission;
use kippu_e2e::{config, production_parts, staff_token, Client};
use serde_json::Value;

#[path = "scenario/settlement.rs"]
mod settlement;

const DAY: i64 = 86_400;
const OPERATORS: [(u32, &str); 4] = [(1, "metro"), (2, "bus"), (3, "taxi"), (4, "insurer")];

/// An operator's figures for a day, as the chain's own events say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Fig {
    legs: i64,
    revenue: i64,
    refunds: i64,
    refunds_count: i64,
    vouchers: i64,
    vouchers_count: i64,
    payouts: i64,
    payouts_count: i64,
    rides: i64,
    /// Vouchers redeemed elsewhere, paid out of this (the insurer's) claim at a close.
    cover: i64,
    /// Usage adjustments at a close (signed: positive raises what is owed).
    adjust: i64,
}

impl Fig {
    fn net(&self) -> i64 {
        self.revenue - self.refunds
    }
    fn owed(&self) -> i64 {
        self.revenue - self.refunds + self.vouchers - self.cover + self.adjust - self.payouts
    }
    fn add(&mut self, o: &Fig) {
        self.legs += o.legs;
        self.revenue += o.revenue;
        self.refunds += o.refunds;
        self.refunds_count += o.refunds_count;
        self.vouchers += o.vouchers;
        self.vouchers_count += o.vouchers_count;
        self.payouts += o.payouts;
        self.payouts_count += o.payouts_count;
        self.rides += o.rides;
        self.cover += o.cover;
        self.adjust += o.adjust;
    }
}

fn day_str(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * DAY, 0).unwrap().format("%Y-%m-%d").to_string()
}

/// What the contracts emitted, read from the chain (not from Kippu's ledger).
struct Truth {
    /// (operator, UTC day of the block) -> figures; rides from the recorded taps.
    days: BTreeMap<(u32, i64), Fig>,
    /// (operator, period) -> paid out.
    payouts: BTreeMap<(u32, u64), i64>,
    /// (operator, bundle) -> (legs, revenue, refunds).
    bundles: BTreeMap<(u32, u32), (i64, i64, i64)>,
    /// tx hash of every event that posts to an operator, by operator.
    txs: HashMap<u32, BTreeSet<String>>,
    /// Redeeming operator -> voucher value the insurer's claim paid it at closes.
    covered: BTreeMap<u32, i64>,
}

impl Truth {
    async fn read(stack: &kippu::Stack) -> Self {
        let head = stack.chain.block_number().await.unwrap();
        let events = stack.chain.events(stack.deployment.deploy_block, head).await.unwrap();
        let mut times = HashMap::new();
        let mut t = Truth {
            days: BTreeMap::new(),
            payouts: BTreeMap::new(),
            bundles: BTreeMap::new(),
            txs: HashMap::new(),
            covered: BTreeMap::new(),
        };
        let (mut bundle_of_plan, mut plan_of_ticket) = (HashMap::new(), HashMap::new());
        for (meta, ev) in &events {
            if let std::collections::hash_map::Entry::Vacant(e) = times.entry(meta.block_number) {
                let (_, _, time) = stack.chain.block_header(meta.block_number).await.unwrap().unwrap();
                e.insert(time as i64);
            }
            let day = times[&meta.block_number].div_euclid(DAY);
            let (op, fig) = match ev {
                ChainEvent::PlanPurchased { plan_id, bundle_id, .. } => {
                    bundle_of_plan.insert(*plan_id, *bundle_id);
                    continue;
                }
                ChainEvent::LegSold { plan_id, ticket_id, operator_id, share, .. } => {
                    plan_of_ticket.insert(*ticket_id, *plan_id);
                    let b = t.bundles.entry((*operator_id, bundle_of_plan[plan_id])).or_default();
                    (b.0, b.1) = (b.0 + 1, b.1 + share);
                    (*operator_id, Fig { legs: 1, revenue: *share, ..Default::default() })
                }
                ChainEvent::TicketRefunded { ticket_id, operator_id, amount, .. } => {
                    let b = t.bundles.entry((*operator_id, bundle_of_plan[&plan_of_ticket[ticket_id]])).or_default();
                    b.2 += amount;
                    (*operator_id, Fig { refunds: *amount, refunds_count: 1, ..Default::default() })
                }
                ChainEvent::VoucherRedeemed { operator_id, value, .. } => {
                    (*operator_id, Fig { vouchers: *value, vouchers_count: 1, ..Default::default() })
                }
                ChainEvent::Payout { period_id, operator_id, amount, .. } => {
                    *t.payouts.entry((*operator_id, *period_id)).or_default() += amount;
                    (*operator_id, Fig { payouts: *amount, payouts_count: 1, ..Default::default() })
                }
                ChainEvent::VoucherSettled { insurer_id, operator_id, amount, .. } => {
                    *t.covered.entry(*operator_id).or_default() += amount;
                    (*insurer_id, Fig { cover: *amount, ..Default::default() })
                }
                ChainEvent::ClaimMoved { from_operator, to_operator, amount, .. } => {
                    t.days.entry((*from_operator, day)).or_default().adjust -= amount;
                    t.txs.entry(*from_operator).or_default().insert(format!("{:#x}", meta.tx_hash));
                    (*to_operator, Fig { adjust: *amount, ..Default::default() })
                }
                _ => continue,
            };
            t.days.entry((op, day)).or_default().add(&fig);
            t.txs.entry(op).or_default().insert(format!("{:#x}", meta.tx_hash));
        }
        let taps = sqlx::query_as::<_, (i64, i64)>("SELECT operator_id, at FROM taps")
            .fetch_all(stack.store.pool())
            .await
            .unwrap();
        for (op, at) in taps {
            t.days.entry((op as u32, at.div_euclid(DAY))).or_default().rides += 1;
        }
        t
    }

    fn total(&self, op: u32) -> Fig {
        let mut f = Fig::default();
        for (_, d) in self.days.range((op, i64::MIN)..=(op, i64::MAX)) {
            f.add(d);
        }
        f
    }
}

/// Staff's view: each operator's (and the insurer's) own reporting machine, with its API token
/// (`reports:read`) for its own reports; the consortium's admin, signed in, for the rest
/// (unknown operators).
struct Staff {
    http: reqwest::Client,
    base: String,
    /// Operator slug -> its token's bearer value.
    tokens: HashMap<&'static str, String>,
    admin: Client,
}

impl Staff {
    async fn new(stack: &kippu::Stack) -> Self {
        let mut tokens = HashMap::new();
        for slug in ["metro", "bus", "taxi", "insurer"] {
            tokens.insert(slug, staff_token(stack, slug, &[Permission::ReportsRead]).await);
        }
        let admin = Client::new(&stack.web_url);
        admin.staff_sign_in().await;
        Self { http: reqwest::Client::new(), base: stack.web_url.clone(), tokens, admin }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let slug = path.strip_prefix("/operators/").and_then(|p| p.split(['/', '?', '.']).next());
        let r = match slug.and_then(|s| self.tokens.get(s)) {
            Some(token) => self.http.get(url).bearer_auth(token),
            None => self.admin.http.get(url),
        };
        r.send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
        r.json().await.unwrap()
    }

    async fn html(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// A CSV export: its filename and rows as header -> value maps.
    async fn csv(&self, path: &str) -> (String, Vec<HashMap<String, String>>) {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8", "{path}");
        let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
        let name = disposition
            .strip_prefix("attachment; filename=\"")
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{path}: {disposition}"))
            .to_string();
        let body = r.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let rows = reader
            .records()
            .map(|rec| {
                let rec = rec.unwrap_or_else(|e| panic!("{path}: bad CSV: {e}\n{body}"));
                headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
            })
            .collect();
        (name, rows)
    }

    async fn refused(&self, path: &str, status: u16, reason: &str) {
        let r = self.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(reason), "{path}: {reason:?} not in {body}");
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn num(row: &HashMap<String, String>, col: &str) -> i64 {
    row[col].parse().unwrap_or_else(|_| panic!("{col}: {:?}", row[col]))
}

async fn run_reports(cfg: Config) {
    let stack = kippu::start(cfg).await.expect("stack starts");
    settlement::two_days_of_settlement(&stack).await;
    let c = Client::new(&stack.web_url);

    let truth = Truth::read(&stack).await;
    let chain_days: BTreeSet<i64> = truth.days.keys().map(|k| k.1).collect();
    assert!(chain_days.len() >= 2, "activity on two days: {chain_days:?}");
    let staff = Staff::new(&stack).await;

    // ---- Staff only; unknown operators and bad parameters are refused with a reason.
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in [
        "/operators/bus/report",
        "/operators/bus/report.csv",
        "/operators/bus/report.json",
        "/operators/bus/events",
        "/operators/bus/events.csv",
        "/operators/bus/rides.json",
        "/operators/bus/statements/1",
    ] {
        let r = anonymous.get(format!("{}{path}", stack.web_url)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        let to = r.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/portal/signin?next="), "{path}: {to}");
        let r = anonymous.get(format!("{}{path}", stack.web_url)).bearer_auth("guess").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    // A browser signs in on the portal and lands on the report it asked for (the staff cookie reaches it).
    let browser = Client::new(&stack.web_url);
    let bus_staff = kippu::dev::dev_staff_email("bus");
    let (status, url, body) = browser
        .form(
            "/portal/signin",
            &[
                ("email", bus_staff.as_str()),
                ("password", kippu::dev::DEV_PORTAL_PASSWORD),
                ("next", "/operators/bus/report"),
            ],
        )
        .await;
    assert_eq!((status, url.ends_with("/operators/bus/report")), (200, true), "{url}");
    assert!(body.contains("Bull Runner Bus <span>Settlement report</span>"), "{body}");
    // Each operator reads its own reports only: not the metro's, with the bus's session or token.
    let r = browser.http.get(format!("{}/operators/metro/report", stack.web_url)).send().await.unwrap();
    assert_eq!(r.status(), 403, "the bus's staff on the metro's report");
    assert!(r.text().await.unwrap().contains("another organisation"));
    let r = anonymous
        .get(format!("{}/operators/metro/report.json", stack.web_url))
        .bearer_auth(&staff.tokens["bus"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the bus's token on the metro's report");
    assert!(r.text().await.unwrap().contains("another organisation"));
    // A token reads reports only if issued for it.
    let scanner = staff_token(&stack, "bus", &[Permission::VouchersRedeem]).await;
    let r = anonymous.get(format!("{}/operators/bus/report.json", stack.web_url)).bearer_auth(scanner).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 403, "a scanner's token on the bus's report");
    assert!(r.text().await.unwrap().contains("do not include reports:read"));
    staff.refused("/operators/nope/report", 404, "No operator").await;
    staff.refused("/operators/nope/events.csv", 404, "No operator").await;
    staff.refused("/operators/nope/statements/1", 404, "No operator").await;
    staff.refused("/operators/bus/statements/99", 404, "No clearing period 99").await;
    staff.refused("/operators/bus/events?period=99", 404, "No clearing period 99").await;
    staff.refused("/operators/bus/events?bundle=99", 404, "No bundle 99").await;
    staff.refused("/operators/bus/statements/first", 400, "period must be a period number").await;
    staff.refused("/operators/bus/events?kind=Bogus", 400, "kind must be one or more").await;
    staff.refused("/operators/bus/events?day=2024-13-01", 400, "day must be a date").await;
    staff.refused("/operators/bus/events?day=yesterday", 400, "day must be a date").await;
    staff.refused("/operators/bus/events?period=last", 400, "period must be a period number").await;
    staff.refused("/operators/bus/events?page=0", 400, "page must be a whole number").await;
    staff.refused("/operators/bus/events?page=7", 400, "past the last page").await;
    staff.refused("/operators/bus/events?perod=1", 400, "Unknown parameter").await;
    staff.refused("/operators/bus/events?kind=Payout&kind=LegSold", 400, "more than once").await;
    staff.refused("/operators/bus/report?format=xml", 400, "format must be").await;
    staff.refused("/operators/bus/report.csv?format=json", 400, "contradicts").await;
    staff.refused("/operators/bus/report.csv?table=nope", 400, "table must be").await;
    staff.refused("/operators/bus/rides?day=undated", 400, "applies to events only").await;

    // Statements print without the app's navigation.
    let css = c.page("/static/kippu.css").await;
    let print = css.split("@media print").nth(1).expect("a print stylesheet");
    assert!(print.contains("header.top, footer, .no-print { display: none"), "{print}");

    // The open overview links every operator's report.
    c.staff_sign_in().await;
    let overview = c.page("/operators/report").await;
    for (_, slug) in OPERATORS {
        assert!(overview.contains(&format!("href=\"/operators/{slug}/report\"")), "{slug} linked");
    }

    // A sanity anchor independent of any code: the bus sold 3 Explorer legs (5.10) and 2 Commuter legs (5.40).
    assert_eq!(truth.total(2).revenue, 3 * 510 + 3 * 540);
    // The usage-settled Commuter moved part of the metro's booked share to the bus at the close.
    let (metro_adj, bus_adj) = (truth.total(1).adjust, truth.total(2).adjust);
    // Its metro leg was booked 18.00 and its bus day 5.40; ridden once each, they share 23.40 equally.
    assert_eq!((metro_adj, bus_adj), (-630, 630), "usage adjustment at the first close");
    // The insurer's premiums of period 1 (2 × 2.55 + 2 × 1.35) paid that much of the 15.00 voucher
    // the taxi redeemed; the rest stayed payable.
    assert_eq!(truth.total(4).cover, 780 + 255, "premiums of periods 1 and 2 went to the taxi's vouchers");
    assert_eq!(truth.covered.get(&3), Some(&(780 + 255)));
    // Kippu's record of its first close: the window's four plans, the one claim it moved.
    let close = stack.store.period_close(1).await.unwrap().expect("period 1 was closed by Kippu");
    assert_eq!((close.plans, close.transfers.clone(), close.carried.len()), (4, vec![(1, 2, 630)], 0), "{close:?}");
    assert!(stack.store.settlement_carry().await.unwrap().is_empty());
    // The second close's window starts where the first ended: its one plan (an Explorer, settled
    // as booked) and no plan of the first window again, even one bought in the second of the close.
    let close2 = stack.store.period_close(2).await.unwrap().expect("period 2 was closed by Kippu");
    assert_eq!((close2.window_from, close2.plans, close2.transfers.len()), (close.window_to, 1, 0), "{close2:?}");
    // After two closes with claims moved and vouchers paid, the ledger still equals the contracts.
    let (_, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, 1).await.unwrap().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");

    for (op, slug) in OPERATORS {
        let want = truth.total(op);
        let owed = -stack.store.account_balance(&format!("operator:{op}")).await.unwrap();
        assert_eq!(want.owed(), owed, "{slug}: the chain's events and the ledger agree");

        // ---- The report (JSON) equals the chain, in total and per day.
        let report = staff.json(&format!("/operators/{slug}/report.json")).await;
        assert_eq!(report["operator"]["slug"], slug);
        let t = &report["totals"];
        let got = Fig {
            legs: int(&t["legs"]),
            revenue: int(&t["revenue"]),
            refunds: int(&t["refunds"]),
            refunds_count: int(&t["refunds_count"]),
            vouchers: int(&t["vouchers"]),
            vouchers_count: int(&t["vouchers_count"]),
            payouts: int(&t["payouts"]),
            payouts_count: int(&t["payouts_count"]),
            rides: int(&t["rides"]),
            cover: int(&t["voucher_cover"]),
            adjust: int(&t["adjustments"]),
        };
        assert_eq!(got, want, "{slug} totals");
        assert_eq!(int(&t["net_revenue"]), want.net(), "{slug}");
        assert_eq!(int(&t["owed"]), owed, "{slug}");
        let daily = report["daily"].as_array().unwrap();
        let want_days: Vec<(i64, &Fig)> =
            truth.days.range((op, i64::MIN)..=(op, i64::MAX)).map(|((_, d), f)| (*d, f)).collect();
        assert_eq!(daily.len(), want_days.len(), "{slug}: one row per active day");
        for (row, (day, f)) in daily.iter().zip(&want_days) {
            assert_eq!(row["day"], day_str(*day), "{slug}");
            assert_eq!(int(&row["net_revenue"]), f.net(), "{slug} net revenue on {}", day_str(*day));
            assert_eq!(int(&row["rides"]), f.rides, "{slug} rides on {}", day_str(*day));
            assert_eq!(int(&row["vouchers"]), f.vouchers, "{slug} vouchers on {}", day_str(*day));
            assert_eq!(int(&row["payouts"]), f.payouts, "{slug} payouts on {}", day_str(*day));

            // ---- Each daily figure drills down to exactly the events behind it.
            let q = format!("?kind=LegSold,TicketRefunded&day={}", day_str(*day));
            let drill = staff.json(&format!("/operators/{slug}/events.json{q}")).await;
            assert_eq!(int(&drill["total_count"]), f.legs + f.refunds_count, "{slug} {q}");
            assert_eq!(int(&drill["total_owed_change"]), f.net(), "{slug} {q}");
            let events = drill["events"].as_array().unwrap();
            assert_eq!(events.len() as i64, f.legs + f.refunds_count, "{slug} {q}: the export has them all");
            assert_eq!(events.iter().map(|e| int(&e["owed_change"])).sum::<i64>(), f.net());
            for e in events {
                assert!(["LegSold", "TicketRefunded"].contains(&e["kind"].as_str().unwrap()), "{e}");
                assert_eq!(e["day"], day_str(*day));
                assert!(truth.txs[&op].contains(e["tx_hash"].as_str().unwrap()), "{slug}: {e} is on chain");
                assert_eq!(int(&e["posting"]), -int(&e["owed_change"]));
            }
            let (_, rows) = staff.csv(&format!("/operators/{slug}/events.csv{q}")).await;
            assert_eq!(rows.len() as i64, f.legs + f.refunds_count, "{slug} {q} CSV");
            assert_eq!(rows.iter().map(|r| num(r, "owed_change")).sum::<i64>(), f.net(), "{slug} {q} CSV");
            let html = staff.html(&format!("/operators/{slug}/events{q}")).await;
            assert_eq!(html.matches("<tr data-event=").count() as i64, f.legs + f.refunds_count, "{slug} {q}");
            for e in events {
                assert!(html.contains(e["tx_hash"].as_str().unwrap()), "the page shows each tx hash");
            }
            let rides = staff.json(&format!("/operators/{slug}/rides.json?day={}", day_str(*day))).await;
            assert_eq!(int(&rides["total_count"]), f.rides, "{slug} rides drill-down on {}", day_str(*day));
            assert_eq!(rides["rides"].as_array().unwrap().len() as i64, f.rides);
        }
        // Each total drills down too: one kind at a time, over all days.
        for (kind, count, owed_change) in [
            ("LegSold", want.legs, want.revenue),
            ("TicketRefunded", want.refunds_count, -want.refunds),
            ("VoucherRedeemed", want.vouchers_count, want.vouchers),
            ("Payout", want.payouts_count, -want.payouts),
        ] {
            let drill = staff.json(&format!("/operators/{slug}/events.json?kind={kind}")).await;
            assert_eq!(
                (int(&drill["total_count"]), int(&drill["total_owed_change"])),
                (count, owed_change),
                "{slug} {kind}"
            );
        }
        let all = staff.json(&format!("/operators/{slug}/events.json")).await;
        assert_eq!(int(&all["total_owed_change"]), owed, "{slug}: all events sum to what is owed");
        let page = staff.json(&format!("/operators/{slug}/events.json?page=1")).await;
        assert_eq!((page["page"].as_i64(), page["per_page"].as_i64()), (Some(1), Some(50)));

        // ---- The CSV exports parse and sum to the same totals.
        let (name, rows) = staff.csv(&format!("/operators/{slug}/report.csv")).await;
        assert_eq!(name, format!("kippu-{slug}-daily.csv"));
        assert_eq!(rows.len(), want_days.len());
        assert_eq!(rows.iter().map(|r| num(r, "net_revenue")).sum::<i64>(), want.net(), "{slug} CSV");
        assert_eq!(rows.iter().map(|r| num(r, "rides")).sum::<i64>(), want.rides, "{slug} CSV");
        assert_eq!(rows.iter().map(|r| num(r, "vouchers")).sum::<i64>(), want.vouchers, "{slug} CSV");
        assert_eq!(rows.iter().map(|r| num(r, "payouts")).sum::<i64>(), want.payouts, "{slug} CSV");
        let (name, rows) = staff.csv(&format!("/operators/{slug}/report.csv?table=bundles")).await;
        assert_eq!(name, format!("kippu-{slug}-bundles.csv"));
        assert_eq!(rows.iter().map(|r| num(r, "net_revenue")).sum::<i64>(), want.net(), "{slug} bundles CSV");
        let (_, all_rows) = staff.csv(&format!("/operators/{slug}/events.csv")).await;
        assert_eq!(all_rows.iter().map(|r| num(r, "owed_change")).sum::<i64>(), owed, "{slug} events CSV");

        // ---- Each bundle's share equals the chain's legs of that bundle, and drills down to them.
        let bundles = report["bundles"].as_array().unwrap();
        let want_bundles: Vec<_> = truth.bundles.range((op, 0)..=(op, u32::MAX)).collect();
        assert_eq!(bundles.len(), want_bundles.len(), "{slug} bundles");
        for ((_, bundle), (legs, revenue, refunds)) in want_bundles {
            let row = bundles.iter().find(|b| b["bundle_id"] == *bundle).unwrap();
            assert_eq!((int(&row["legs"]), int(&row["net_revenue"])), (*legs, revenue - refunds), "{slug} {bundle}");
            let drill =
                staff.json(&format!("/operators/{slug}/events.json?kind=LegSold,TicketRefunded&bundle={bundle}")).await;
            assert_eq!(int(&drill["total_owed_change"]), revenue - refunds, "{slug} bundle {bundle} drill-down");
        }
        if want.net() > 0 {
            let shares: i64 = bundles.iter().map(|b| int(&b["share_bps"])).sum();
            assert!((9_998..=10_002).contains(&shares), "{slug}: shares add up to 100 %: {shares}");
        }

        // ---- Statements: three periods (two closed, one open) that chain and reconcile.
        let periods = report["periods"].as_array().unwrap();
        assert_eq!(
            periods.iter().map(|p| (int(&p["period_id"]), p["closed"].as_bool().unwrap())).collect::<Vec<_>>(),
            [(1, true), (2, true), (3, false)]
        );
        let (_, period_rows) = staff.csv(&format!("/operators/{slug}/report.csv?table=periods")).await;
        assert_eq!(period_rows.len(), 3);
        let mut opening = 0;
        for p in periods {
            let id = int(&p["period_id"]) as u64;
            assert_eq!(int(&p["opening"]), opening, "{slug} period {id} opens where the last closed");
            let computed = int(&p["opening"]) + int(&p["revenue"]) - int(&p["refunds"]) + int(&p["vouchers"])
                - int(&p["voucher_cover"])
                + int(&p["adjustments"])
                - int(&p["payouts"]);
            assert_eq!(computed, int(&p["closing"]), "{slug} period {id} reconciles");
            assert_eq!(p["reconciles"], true);
            assert_eq!(int(&p["payouts"]), truth.payouts.get(&(op, id)).copied().unwrap_or(0), "{slug} period {id}");
            let st = staff.json(&format!("/operators/{slug}/statements/{id}?format=json")).await;
            assert_eq!(st["closing"], p["closing"]);
            let events = st["events"].as_array().unwrap();
            assert_eq!(
                events.iter().map(|e| int(&e["owed_change"])).sum::<i64>(),
                int(&p["closing"]) - int(&p["opening"]),
                "{slug} period {id}: its events are the difference"
            );
            let drill = staff.json(&format!("/operators/{slug}/events.json?period={id}")).await;
            assert_eq!(drill["total_count"].as_i64(), Some(events.len() as i64));
            let page = staff.html(&format!("/operators/{slug}/statements/{id}")).await;
            assert!(page.contains("id=\"reconciles\">Reconciles:"), "{slug} statement {id}");
            assert_eq!(page.matches("<tr data-event=").count(), events.len());
            let (name, lines) = staff.csv(&format!("/operators/{slug}/statements/{id}?format=csv")).await;
            assert_eq!(name, format!("kippu-{slug}-statement-{id}.csv"));
            let line = |l: &str| num(lines.iter().find(|r| r["line"] == l).unwrap(), "amount");
            assert_eq!(
                line("opening") + line("revenue") - line("refunds") + line("vouchers") - line("voucher_cover")
                    + line("adjustments")
                    - line("payouts"),
                line("closing")
            );
            opening = int(&p["closing"]);
        }
        assert_eq!(opening, owed, "{slug}: the open period closes at what is owed now");
        // Clearing pays everything unpaid at each close, vouchers included as far as the insurer's
        // premiums cover them; what they did not cover stays owed (DelayInsurance's payable).
        let closed = &periods[1];
        let covered = truth.covered.get(&op).copied().unwrap_or(0);
        assert_eq!(
            int(&closed["closing"]),
            want.vouchers - covered,
            "{slug}: after the second close only uncovered vouchers are owed"
        );

        // ---- The HTML report shows the charts and links each figure to its drill-down.
        let html = staff.html(&format!("/operators/{slug}/report")).await;
        for id in ["revenue-chart", "bundles-chart", "periods", "days"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{slug} report has #{id}");
        }
        let rides_chart = if want.rides > 0 { "id=\"rides-chart\"" } else { "id=\"no-rides\"" };
        let vouchers_chart = if want.vouchers_count > 0 { "id=\"vouchers-chart\"" } else { "id=\"no-vouchers\"" };
        assert!(html.contains(rides_chart) && html.contains(vouchers_chart), "{slug}: charts of what there is");
        assert!(html.contains("id=\"reconciles\">✓ Revenue"), "{slug}: the report reconciles");
        assert!(html.contains(&format!("href=\"/operators/{slug}/events?kind=LegSold\"")), "{slug}");
        assert!(html.contains(&format!("href=\"/operators/{slug}/statements/1\"")), "{slug}");
        for (day, _) in &want_days {
            assert!(
                html.contains(&format!(
                    "href=\"/operators/{slug}/events?kind=LegSold,TicketRefunded&amp;day={}\"",
                    day_str(*day)
                )),
                "{slug}: the revenue on {} links to its events",
                day_str(*day)
            );
        }
    }

    // The statements name the close's own lines: the insurer's cover, the usage adjustments.
    let insurer = staff.html("/operators/insurer/statements/1").await;
    assert!(insurer.contains("data-line=\"cover\"") && insurer.contains("Vouchers paid to other operators, 1"));
    let metro_st = staff.html("/operators/metro/statements/1").await;
    assert!(metro_st.contains("data-line=\"adjustments\"") && metro_st.contains("Usage adjustments, 1"), "{metro_st}");

    // Figures worth knowing by heart: the metro's Commuter legs (three sold, one refunded).
    let metro = staff.json("/operators/metro/report.json").await;
    let commuter_row = metro["bundles"].as_array().unwrap().iter().find(|b| b["bundle_id"] == 2).unwrap().clone();
    assert_eq!((int(&commuter_row["legs"]), int(&commuter_row["refunds"])), (3, 1800 * 8 / 10));
    assert_eq!(stack.store.ledger_imbalance().await.unwrap(), 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_reports_on_sqlite() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    run_reports(config("reports", None, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_reports_on_postgres() {
    let Some((db, mqtt, guard)) = production_parts().await else { return };
    run_reports(config("reports-prod", Some(db), Some(mqtt))).await;
    guard.drop_now().await;
}
