//! The whole trip, shared by `trip.rs` (the embedded default's anvil on automine, the
//! production parts, and anvil as a consortium chain) and `trip_hardhat.rs` (Hardhat's node as
//! a consortium chain), each including this file with `#[path]`: sign-in by DID, a card top-up
//! through the loopback Stripe, a bundle purchase, gates (QR passes and a contactless card),
//! validity windows, a refund, tap anchoring, delay vouchers, the period close and the metrics.
//! "As a consortium chain": a block every second, never on each transaction, and gas price 0.

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use kippu::Config;
use kippu_chain::hardhat::{LocalNode, NodeKind};
use kippu_e2e::{config, now, repo, Client};
use kippu_identity::deterministic_demo_key;
use serde_json::Value;

/// The trip on a `kind` node started as a consortium chain is configured (a block every second,
/// never on each transaction; gas price 0), the platform pointed at it as at an external node
/// (`chain.rpc_url`): the platform deploys and seeds the demo there. Prints how long it took.
pub(crate) async fn trip_on_consortium_node(kind: NodeKind) {
    let at = Instant::now();
    let anvil = repo().join("contracts/node_modules/.bin/anvil");
    let node = LocalNode::spawn(kind, &anvil, 0, 31337, 1)
        .await
        .unwrap_or_else(|e| panic!("{} ({e}); npm ci in contracts/ and tests/hardhat/", kind.name()));
    let up = at.elapsed().as_secs_f64();
    let mut cfg = config(&format!("{}-1s", kind.name()), None, None);
    cfg.chain.rpc_url = Some(node.url());
    run_trip(cfg).await;
    println!(
        "trip on {} (block time 1 s, base fee 0): node up in {up:.1} s, the trip (deployment and seed included) in {:.1} s",
        kind.name(),
        at.elapsed().as_secs_f64() - up
    );
    node.stop().await;
}

/// Scenario steps on top of the shared client.
trait Trip {
    async fn scan(&self, gate: &str, png: Vec<u8>) -> Value;
    async fn feed(&self, feed_time: u64, trips: &[(&str, i32)]) -> Value;
    async fn feed_bytes(&self, body: Vec<u8>) -> (u16, Value);
}

impl Trip for Client {
    async fn scan(&self, gate: &str, png: Vec<u8>) -> Value {
        let r = self.http.post(format!("{}/gates/{gate}/scan", self.base)).body(png).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// Feeds a message stamped `feed_time` that must be accepted.
    async fn feed(&self, feed_time: u64, trips: &[(&str, i32)]) -> Value {
        let items: Vec<_> = trips.iter().map(|(t, m)| (t.to_string(), None, m * 60)).collect();
        let (status, out) = self.feed_bytes(kippu_gtfs::encode_trip_updates(feed_time, &items)).await;
        assert_eq!(status, 200, "{out}");
        out
    }

    async fn feed_bytes(&self, body: Vec<u8>) -> (u16, Value) {
        let r = self.http.post(format!("{}/dev/gtfs-rt", self.base)).body(body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

fn reason(v: &Value) -> &str {
    v["reason"].as_str().unwrap_or("")
}

/// The whole trip on a fresh stack started from `cfg`, which is shut down at the end.
pub(crate) async fn run_trip(cfg: Config) {
    let stack = kippu::start(cfg).await.expect("stack starts");
    let c = Client::new(&stack.web_url);
    let ben = deterministic_demo_key("ben");
    let ben_addr = format!("{:#x}", ben.address());

    // Sign in by DID challenge-response; the DID is shown.
    let r = c.http.post(format!("{}/signin", c.base)).form(&[("address", ben_addr.as_str())]).send().await.unwrap();
    assert!(r.status().is_success());
    let home = r.text().await.unwrap();
    assert!(home.contains("did:pkh:eip155:31337:"), "home shows the DID");
    let me = c.me().await;
    assert_eq!(me["balance"], 0);

    // Top up by card: Checkout Session on the loopback Stripe, pay, signed webhook mints FARE.
    let r = c.http.post(format!("{}/topup", c.base)).form(&[("amount", "150")]).send().await.unwrap();
    let pay_url = r.url().clone();
    assert!(pay_url.path().starts_with("/pay/cs_"), "redirected to Checkout, got {pay_url}");
    let r = c.http.post(pay_url.as_str()).send().await.unwrap();
    assert!(r.url().path().starts_with("/topup/done"), "{}", r.url());
    assert_eq!(c.me().await["balance"], 15_000);
    // Stripe delivers again: nothing more is minted.
    let fake = kippu::dev::demo(&stack).and_then(|d| d.fake_stripe.as_ref()).expect("fake stripe");
    for id in fake.event_ids() {
        fake.redeliver(&id).await.expect("redelivered");
    }
    assert_eq!(c.me().await["balance"], 15_000, "duplicate webhook minted twice");
    // A forged webhook is refused.
    let forged = c
        .http
        .post(format!("{}/webhooks/stripe", c.base))
        .header("stripe-signature", format!("t={},v1={}", now(), "00".repeat(32)))
        .body(r#"{"id":"evt_forged","type":"checkout.session.completed","data":{"object":{}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    // Buy the Explorer bundle in one step.
    let r = c.http.post(format!("{}/plans/1/buy", c.base)).send().await.unwrap();
    assert!(r.url().query().unwrap_or("").starts_with("bought="), "{}", r.url());
    let me = c.me().await;
    assert_eq!(me["balance"], 15_000 - 3570);
    let tickets = me["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 4);
    let metro = tickets.iter().find(|t| t["operator_id"] == 1).unwrap()["id"].as_u64().unwrap();

    // The gate reads the QR image the app shows and asks the validator over MQTT.
    let png = c
        .http
        .get(format!("{}/tickets/{metro}/pass.png", c.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let v = c.scan("metro/central/g1", png.clone()).await;
    assert_eq!(v["open"], true, "{v}");
    assert_eq!(reason(&c.scan("metro/central/g1", png.clone()).await), "REPLAY");
    assert_eq!(reason(&c.scan("bus/usf-library/g1", png).await), "WRONG_OPERATOR");
    let not_a_pass = kippu_web::qr_png("https://example.com/not-a-ticket").unwrap();
    assert_eq!(reason(&c.scan("metro/central/g1", not_a_pass).await), "NOT_A_PASS");
    let mut blank = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_pixel(64, 64, image::Luma([255u8])).write_to(&mut blank, image::ImageFormat::Png).unwrap();
    assert_eq!(reason(&c.scan("metro/central/g1", blank.into_inner()).await), "UNREADABLE_QR");
    let forger = PrivateKeySigner::random();
    let forged = kippu_web::pass_png(&forger, metro, now()).unwrap();
    assert_eq!(reason(&c.scan("metro/central/g1", forged).await), "NOT_HOLDER");
    let unknown = kippu_web::pass_png(&ben, 999_999, now()).unwrap();
    assert_eq!(reason(&c.scan("metro/central/g1", unknown).await), "UNKNOWN_TICKET");
    let stale = kippu_web::pass_png(&ben, metro, now() - 120).unwrap();
    assert_eq!(reason(&c.scan("metro/central/g1", stale).await), "STALE_PASS");

    // Validity windows: a plan whose 3 days ended yesterday, and one starting tomorrow.
    let (price, _) = stack.chain.quote(1).await.unwrap();
    let day = 86_400;
    let mut future_plan = None;
    for (start, want) in [(now() - 4 * day, "EXPIRED"), (now() + day, "NOT_YET_VALID")] {
        let (plan, _) =
            stack.chain.buy_with_permit(alloy::primitives::B256::random(), &ben, 1, price, start).await.unwrap();
        stack.indexer.catch_up().await.unwrap();
        let me = c.me().await;
        let t =
            me["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == 1 && t["plan_id"] == plan).unwrap()
                ["id"]
                .as_u64()
                .unwrap();
        let png = c.http.get(format!("{}/tickets/{t}/pass.png", c.base)).send().await.unwrap().bytes().await.unwrap();
        let v = c.scan("metro/central/g1", png.to_vec()).await;
        assert_eq!(reason(&v), want, "{v}");
        future_plan = Some(plan);
    }

    // Refunds: the unused taxi credit of the future plan returns 80 % of its share
    // from escrow; a pass whose product allows no refund is refused.
    let plan = future_plan.unwrap();
    let me = c.me().await;
    let leg = |op: u32| {
        me["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == op && t["plan_id"] == plan).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let before = me["balance"].as_u64().unwrap();
    let refunded = stack.chain.refund(leg(3)).await.unwrap();
    assert_eq!(refunded, 1275 * 8 / 10);
    let err = stack.chain.refund(leg(1)).await.unwrap_err();
    assert!(err.to_string().contains("NotRefundable"), "{err}");
    stack.indexer.catch_up().await.unwrap();
    let me = c.me().await;
    assert_eq!(me["balance"].as_u64().unwrap(), before + 1020);
    assert!(!me["tickets"].as_array().unwrap().iter().any(|t| t["id"] == leg(3)), "refunded ticket still listed");

    // The accepted tap is recorded once.
    let mut taps = Vec::new();
    for _ in 0..50 {
        taps = stack.store.taps_of_ticket(metro).await.unwrap();
        if !taps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(taps.len(), 1);
    // Taps are anchored on chain as one Merkle root; a tap's proof checks on chain, a forged one does not.
    let anchored = kippu::anchor::anchor_pending(&stack.chain, &stack.store).await.unwrap().expect("a batch");
    let (batch, count) = (anchored.batch_id, anchored.taps);
    assert_eq!(count, 1);
    assert_eq!(anchored.refused, vec![], "the ride is recorded on its ticket");
    assert!(kippu::anchor::anchor_pending(&stack.chain, &stack.store).await.unwrap().is_none(), "anchored twice");
    let leaf = kippu::anchor::leaf_of(&taps[0]);
    assert!(stack.chain.verify_tap(batch, leaf, vec![]).await.unwrap());
    let forged = kippu_domain::merkle::tap_leaf("forged", metro, 1, 0);
    assert!(!stack.chain.verify_tap(batch, forged, vec![]).await.unwrap());
    let t = &taps[0];
    let scan_hash = alloy::primitives::keccak256(t.scan_id.as_bytes());
    assert_eq!(stack.chain.tap_leaf(scan_hash, t.ticket_id, t.operator_id, t.at as u64).await.unwrap(), leaf);
    // A larger tree: every Rust-built proof verifies on chain (sorted-pair hashing as OpenZeppelin's).
    let leaves: Vec<_> = (0..5u64).map(|i| kippu_domain::merkle::tap_leaf(&format!("s{i}"), i, 1, i)).collect();
    let tree = kippu_domain::merkle::MerkleTree::new(leaves.clone()).unwrap();
    let big = stack.chain.anchor_taps(tree.root(), 5).await.unwrap();
    for (i, l) in leaves.iter().enumerate() {
        assert!(stack.chain.verify_tap(big, *l, tree.proof(i).unwrap()).await.unwrap(), "leaf {i}");
    }
    assert!(!stack.chain.verify_tap(big, forged, tree.proof(0).unwrap()).await.unwrap());

    // Delay insurance pays the affected only: Ben boards bus trip 1 (the on-board validator names
    // the run); trips 1 and 8 then run late, and only his trip pays.
    let bus = c.ticket_of(2, Some(tickets[0]["plan_id"].as_u64().unwrap())).await;
    let v = c.ride(&stack.store, bus, "bus/bull-runner-7/onboard", Some("1")).await;
    assert_eq!(v["open"], true, "{v}");
    let t0 = now() - 30;
    let out = c.feed(t0, &[("1", 20), ("8", 40)]).await;
    assert_eq!(out["vouchers"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["delayed"], 2, "{out}");
    assert_eq!(out["affected"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["affected"][0][1], "tapped", "{out}");
    let restated = kippu_gtfs::encode_trip_updates(t0 + 1, &[("1".into(), None, 25 * 60)]);
    let (_, again) = c.feed_bytes(restated.clone()).await;
    assert_eq!(again["vouchers"].as_array().unwrap().len(), 0, "same delay paid twice: {again}");
    // The same message again, an older one arriving late, a cached hour-old one, garbage: refused, nothing paid.
    let refused = |(status, v): (u16, Value), why: &str| {
        assert_eq!(status, 422, "{v}");
        assert!(v["rejected"].as_str().unwrap_or("").starts_with(why), "{why}: {v}");
        assert!(v["vouchers"].as_array().unwrap().is_empty());
    };
    refused(c.feed_bytes(restated).await, "duplicate");
    refused(c.feed_bytes(kippu_gtfs::encode_trip_updates(t0 - 5, &[("7".into(), None, 3600)])).await, "out-of-order");
    refused(c.feed_bytes(kippu_gtfs::encode_trip_updates(now() - 3600, &[("7".into(), None, 3600)])).await, "stale");
    refused(c.feed_bytes(b"not a protobuf feed".to_vec()).await, "malformed");
    let small = c.feed(t0 + 2, &[("3", 5)]).await;
    assert_eq!(small["delayed"], 0);
    let me = c.me().await;
    assert_eq!(me["vouchers"].as_array().unwrap().len(), 1);
    assert_eq!(me["vouchers"][0]["value"], 1500);
    let home = c.http.get(format!("{}/", c.base)).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("data-voucher="), "voucher visible in the app");
    // The dashboard: late runs on routes A and D (trip 7 was refused, trip 3 under threshold), one voucher.
    c.staff_sign_in().await;
    let dash = c.page("/operators/insurance").await;
    assert_eq!(dash.matches("<tr data-route=").count(), 2, "{dash}");
    assert!(dash.contains("id=\"delays-chart\"") && dash.contains("id=\"vouchers-chart\""), "{dash}");
    assert!(dash.contains("<td>City Taxi</td><td class=\"num\">1</td><td class=\"num\">15.00</td>"), "{dash}");

    // Settlement: the ledger splits the purchase across operators, balanced and equal to escrow.
    stack.indexer.catch_up().await.unwrap();
    let report = stack.store.operator_report().await.unwrap();
    let share = |id: u32| report.iter().find(|r| r.operator_id == id).unwrap().revenue;
    // Three Explorer plans (the current one, the expired and the future one), each split by list-price share.
    assert_eq!((share(1), share(2), share(3), share(4)), (3 * 1530, 3 * 510, 3 * 1275, 3 * 255));
    assert_eq!(report.iter().find(|r| r.operator_id == 1).unwrap().rides, 1);
    assert_eq!(stack.store.ledger_imbalance().await.unwrap(), 0);
    // Escrow on chain equals what the ledger says operators are owed.
    let escrow_on_chain = stack.chain.escrow_balance().await.unwrap() as i64;
    let mut owed = 0;
    for id in 1..=4 {
        owed -= stack.store.account_balance(&format!("operator:{id}")).await.unwrap();
    }
    assert_eq!(owed, escrow_on_chain);
    assert_eq!(escrow_on_chain, 3 * 3570 - 1020);
    // Period close: Clearing pays each operator its share; the ledger books the payouts and escrow empties.
    let r = c.http.post(format!("{}/dev/close-period", c.base)).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let report = stack.store.operator_report().await.unwrap();
    for r in &report {
        let refunded = if r.operator_id == 3 { 1020 } else { 0 };
        assert_eq!(r.paid_out, r.revenue - refunded, "operator {} paid its share less refunds", r.operator_id);
    }
    assert_eq!(stack.chain.escrow_balance().await.unwrap(), 0);
    for id in 1..=4 {
        assert_eq!(stack.store.account_balance(&format!("operator:{id}")).await.unwrap(), 0);
    }
    assert_eq!(stack.store.ledger_imbalance().await.unwrap(), 0);
    let page = c.http.get(format!("{}/operators/report", c.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("45.90") && page.contains("<svg"), "report shows shares and a chart");

    // Prometheus metrics count what happened.
    let m = c.http.get(format!("{}/metrics", c.base)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("kippu_gate_verdicts_total") && m.contains("kippu_ledger_events_booked_total"), "{m}");
    // every write of the trip went through the outbox, and none vanished
    let writes = |what: &str| {
        let prefix = format!("kippu_chain_writes_total{{what=\"{what}\"}} ");
        m.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(writes("sent").is_some_and(|n| n > 0) && writes("gone") == Some(0), "{m}");

    // A contactless card linked on the ticket page opens the gate with its answer to the
    // gate's challenge (a tap recorded like a pass's); a typo, someone else's ticket, an
    // unlinked card and a removed card do not.
    let (card_plan, _) =
        stack.chain.buy_with_permit(alloy::primitives::B256::random(), &ben, 1, price, now() - 60).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    let card_ticket = c.ticket_of(1, Some(card_plan)).await;
    let card = kippu_domain::card::Card::from_secret(rand::random());
    let number = alloy::hex::encode(card.public_key());
    let link = |ticket: u64, number: String| {
        let http = c.http.clone();
        let url = format!("{}/tickets/{ticket}/cards", c.base);
        async move { http.post(url).form(&[("card", number)]).send().await.unwrap() }
    };
    let r = link(card_ticket, "12345".into()).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not a card number"));
    assert_eq!(link(999_999, number.clone()).await.status(), 404, "a ticket Ben does not hold");
    let r = link(card_ticket, number.clone()).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert!(r.text().await.unwrap().contains(&number), "the pass page lists the linked card");
    let tap = |card: &kippu_domain::card::Card| {
        let http = c.http.clone();
        let url = format!("{}/dev/gates/metro/central/g1/tap", c.base);
        let secret = alloy::hex::encode(card.secret());
        async move { http.post(url).form(&[("secret", secret)]).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = tap(&card).await;
    assert_eq!(v["open"], true, "{v}");
    assert_eq!(v["ticket"], card_ticket, "{v}");
    assert_eq!(reason(&tap(&kippu_domain::card::Card::from_secret(rand::random())).await), "UNKNOWN_CARD");
    let r =
        c.http.post(format!("{}/tickets/{card_ticket}/cards/remove", c.base)).form(&[("card", &number)]).send().await;
    assert!(r.unwrap().status().is_success());
    assert_eq!(reason(&tap(&card).await), "UNKNOWN_CARD", "a removed card stops at once");
    let mut card_taps = 0;
    for _ in 0..50 {
        card_taps = stack.store.taps_of_ticket(card_ticket).await.unwrap().len();
        if card_taps == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(card_taps, 1, "the card's tap, once");

    // The fleet page reads the gates' retained status from the broker.
    let mut fleet = String::new();
    for _ in 0..50 {
        fleet = c.http.get(format!("{}/gates", c.base)).send().await.unwrap().text().await.unwrap();
        if fleet.matches("gate online").count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fleet.matches("gate online").count(), 3, "{fleet}");

    stack.shutdown().await;
}
