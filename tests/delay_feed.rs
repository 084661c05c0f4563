//! The delay insurer polling a GTFS-Realtime URL on a schedule, as it would
//! an agency's feed: a late trip pays its insured traveler once, however many
//! times the unchanged (or restated) feed is fetched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use kippu_domain::staff::Permission;
use kippu_e2e::{config, now, staff_token, Client};
use kippu_identity::deterministic_demo_key;
use serde_json::Value;

async fn vouchers(c: &Client) -> usize {
    c.me().await["vouchers"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delay_feed_polled_from_a_url_pays_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    // The agency's feed endpoint: serves whatever message is current.
    let current: Arc<Mutex<Vec<u8>>> =
        Arc::new(Mutex::new(kippu_gtfs::encode_trip_updates(now() - 60, &[("9".into(), None, 0)])));
    let served = current.clone();
    let app =
        axum::Router::new().route("/gtfs-rt/trip-updates", get(move || async move { served.lock().unwrap().clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed_url = format!("http://{}/gtfs-rt/trip-updates", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut cfg = config("feed-poll", None, None);
    cfg.insurance.feed_url = Some(feed_url);
    cfg.insurance.poll_secs = 1;
    let stack = kippu::start(cfg).await.expect("stack starts");
    let c = Client::new(&stack.web_url);
    let aiko = deterministic_demo_key("aiko");
    let (status, _, _) = c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    assert_eq!(status, 200);
    let (_, url, _) = c.form("/plans/1/buy", &[]).await;
    assert!(url.contains("bought="), "{url}");
    assert_eq!(vouchers(&c).await, 0);
    let bus = c.ticket_of(2, None).await;
    assert_eq!(c.ride(&stack.store, bus, "bus/bull-runner-7/onboard", Some("1")).await["open"], true);

    // Bus trip 1 runs 20 minutes late: the next poll pays Aiko's delay cover.
    *current.lock().unwrap() = kippu_gtfs::encode_trip_updates(now(), &[("1".into(), None, 20 * 60)]);
    let mut paid = 0;
    for _ in 0..100 {
        paid = vouchers(&c).await;
        if paid > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(paid, 1, "the polled delay paid a voucher");
    // Polled again and again unchanged, then restated in a newer message: still one voucher.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    *current.lock().unwrap() = kippu_gtfs::encode_trip_updates(now() + 1, &[("1".into(), None, 30 * 60)]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(vouchers(&c).await, 1);

    // The taxi driver's scanner reads the voucher's QR from Aiko's phone and redeems it, once.
    let id = c.me().await["vouchers"][0]["id"].as_u64().unwrap();
    let page = c.page(&format!("/vouchers/{id}")).await;
    assert!(page.contains("City Taxi") && page.contains("voucher-qr"), "{page}");
    let png = c.http.get(format!("{}/vouchers/{id}/code.png", c.base)).send().await.unwrap().bytes().await.unwrap();
    let code = read_qr(&png);
    assert!(code.starts_with("KV1."), "{code}");
    // Each operator's scanners hold their own API token (`vouchers:redeem` of that operator),
    // which its staff issue in the portal.
    let taxi_staff = Client::new(&c.base);
    taxi_staff.staff_sign_in_as(&kippu::dev::dev_staff_email("taxi"), "/portal").await;
    let r = taxi_staff
        .http
        .post(format!("{}/portal/orgs/taxi/tokens", c.base))
        .header("accept", "application/json")
        .form(&[("name", "taxi scanner"), ("days", "30"), ("scope", "vouchers:redeem")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the taxi's staff issue their scanner's token");
    let v: Value = r.json().await.unwrap();
    let taxi_token = v["token"].as_str().unwrap_or_else(|| panic!("a token: {v}")).to_owned();
    let bus_token = staff_token(&stack, "bus", &[Permission::VouchersRedeem]).await;
    let redeem_as = |slug: &'static str, code: String, auth: Option<String>| {
        let c = &c;
        async move {
            let url = format!("{}/operators/{slug}/vouchers/redeem", c.base);
            let mut r = reqwest::Client::new().post(url).json(&serde_json::json!({"code": code}));
            if let Some(t) = auth {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(redeem_as("taxi", code.clone(), None).await.0, 401, "no token, no redemption");
    let (status, v) = redeem_as("taxi", code.clone(), Some(bus_token.clone())).await;
    assert_eq!((status, v["redeemed"].as_bool()), (403, Some(false)), "the bus's token at the taxi: {v}");
    assert!(v["error"].as_str().unwrap_or("").contains("another organisation"), "{v}");
    let reader = staff_token(&stack, "taxi", &[Permission::ReportsRead]).await;
    let (status, v) = redeem_as("taxi", code.clone(), Some(reader)).await;
    assert_eq!((status, v["redeemed"].as_bool()), (403, Some(false)), "a taxi token without vouchers:redeem: {v}");
    let redeem = |slug: &'static str, code: String| {
        let token = if slug == "taxi" { taxi_token.clone() } else { bus_token.clone() };
        redeem_as(slug, code, Some(token))
    };
    let (status, v) = redeem("bus", code.clone()).await;
    assert_eq!((status, v["reason"].as_str()), (422, Some("WRONG_OPERATOR")), "{v}");
    let thief = alloy::signers::local::PrivateKeySigner::random();
    let window = kippu_domain::voucher::voucher_window(now());
    let sig =
        alloy::signers::SignerSync::sign_hash_sync(&thief, &kippu_domain::voucher::VoucherCode::digest(id, window))
            .unwrap();
    let forged = kippu_domain::voucher::VoucherCode { voucher_id: id, window, signature: sig.as_bytes() }.encode();
    assert_eq!(redeem("taxi", forged).await.1["reason"], "NOT_HOLDER");
    assert_eq!(redeem("taxi", "KV1.garbage".into()).await.1["reason"], "MALFORMED");
    let (status, v) = redeem("taxi", code.clone()).await;
    assert_eq!((status, v["redeemed"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(redeem("taxi", code).await.1["reason"], "ALREADY_REDEEMED");
    // The redeemed voucher is owed to the taxi by the insurer: ledger and contracts agree.
    stack.indexer.catch_up().await.unwrap();
    let (_, diffs) = kippu::reconcile::reconcile(&stack.chain, &stack.store, 1).await.unwrap().unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(stack.store.account_balance("insurer_pool").await.unwrap(), 1500);
    c.staff_sign_in().await;
    let dash = c.page("/operators/insurance").await;
    assert!(dash.contains("<td>City Taxi</td><td class=\"num\">1</td><td class=\"num\">15.00</td><td class=\"num\">1</td><td class=\"num\">15.00</td>"), "{dash}");
    let metrics = c.page("/metrics").await;
    let duplicates: Value = metrics
        .lines()
        .find(|l| l.starts_with("kippu_delay_feeds_rejected_total{reason=\"duplicate\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(Value::Null, Value::from);
    assert!(duplicates.as_f64().is_some_and(|n| n >= 1.0), "unchanged polls are counted as duplicates: {duplicates}");
    stack.shutdown().await;
}

/// Who is paid, and how much, is decided per insured product: Ben (Explorer, cover 401:
/// 15 min, 15.00 FARE, two a day) and Aiko (Commuter, cover 402: 20 min, 8.00 FARE, one a
/// day) ride the same late bus; Aiko then waits at the library stop for a run that is
/// cancelled, and for another that skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_insured_product_pays_its_affected_travelers_on_its_own_terms() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let stack = kippu::start(config("affected", None, None)).await.expect("stack starts");
    let (aiko, ben) = (Client::new(&stack.web_url), Client::new(&stack.web_url));
    let aiko_key = deterministic_demo_key("aiko");
    let ben_key = deterministic_demo_key("ben");
    stack.chain.mint_fare(ben_key.address(), 5_000, alloy::primitives::B256::repeat_byte(7)).await.unwrap();
    for (c, key, bundle) in [(&aiko, &aiko_key, 2), (&ben, &ben_key, 1)] {
        c.form("/signin", &[("address", &format!("{:#x}", key.address()))]).await;
        let (_, url, body) = c.form(&format!("/plans/{bundle}/buy"), &[]).await;
        assert!(url.contains("bought="), "{url} {body}");
    }
    // Product terms are on chain, and the contract answers with them per policy.
    let policy_of = |me: Value| {
        me["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == 4).unwrap()["id"].as_u64().unwrap()
    };
    let (aiko_policy, ben_policy) = (policy_of(aiko.me().await), policy_of(ben.me().await));
    let taxi = kippu_chain::voucher_category("taxi");
    assert_eq!(stack.chain.terms_for(aiko_policy).await.unwrap(), (20, 800, 3, taxi, 25, 1));
    assert_eq!(stack.chain.terms_for(ben_policy).await.unwrap(), (15, 1500, 3, taxi, 0, 2));

    // Both ride bus trip 3, which runs 17 minutes late: over Ben's 15, under Aiko's 20.
    for c in [&aiko, &ben] {
        let bus = c.ticket_of(2, None).await;
        assert_eq!(c.ride(&stack.store, bus, "bus/bull-runner-7/onboard", Some("3")).await["open"], true);
    }
    let feed = |spec: kippu_gtfs::FeedSpec, at: u64| {
        let c = &aiko;
        async move {
            let body = kippu_gtfs::encode_feed(at, &spec);
            let r = c.http.post(format!("{}/dev/gtfs-rt", c.base)).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let t0 = now() - 60;
    let late = kippu_gtfs::FeedSpec { delays: vec![("3".into(), None, 17 * 60)], ..Default::default() };
    let out = feed(late, t0).await;
    assert_eq!(out["affected"], serde_json::json!([[ben_policy, "tapped"]]), "{out}");
    assert_eq!((vouchers(&aiko).await, vouchers(&ben).await), (0, 1));
    assert_eq!(ben.me().await["vouchers"][0]["value"], 1500);

    // Aiko taps in at the library stop (Bull Runner stop 102); run 5, due there, is cancelled.
    let bus = aiko.ticket_of(2, None).await;
    assert_eq!(
        aiko.ride(&stack.store, bus, "bus/usf-library/g1", None).await["open"],
        true,
        "boarding after the bus is not passback"
    );
    let alert = kippu_gtfs::ServiceAlert {
        id: "c-suspended".into(),
        cause: "TECHNICAL_PROBLEM".into(),
        effect: "REDUCED_SERVICE".into(),
        header: "Route C: one run cancelled".into(),
        description: "Bus 5 is out of service; next run in 20 minutes.".into(),
        active: vec![],
        routes: vec!["C".into()],
        trips: vec!["5".into()],
        stops: vec![],
    };
    let cancelled = kippu_gtfs::FeedSpec { cancelled: vec!["5".into()], alerts: vec![alert], ..Default::default() };
    let out = feed(cancelled, t0 + 1).await;
    assert_eq!((out["cancelled"].as_u64(), out["alerts"].as_u64()), (Some(1), Some(1)), "{out}");
    // The alert reaches travelers whose tickets cover route C, and the dashboard.
    assert!(aiko.page("/").await.contains("data-alert=\"c-suspended\""), "alert on Aiko's home");
    aiko.staff_sign_in().await;
    assert!(aiko.page("/operators/insurance").await.contains("Route C: one run cancelled"));
    assert_eq!(out["affected"], serde_json::json!([[aiko_policy, "not_carried"]]), "{out}");
    assert_eq!(aiko.me().await["vouchers"][0]["value"], 800);

    // Run 8 then skips the stop: affected again, but cover 402 pays one voucher a day.
    let skipped = kippu_gtfs::FeedSpec { skipped: vec![("8".into(), "102".into())], ..Default::default() };
    let out = feed(skipped, t0 + 2).await;
    // A full-dataset message without the alert retires it.
    assert!(aiko.page("/operators/insurance").await.contains("id=\"no-alerts\""));
    assert_eq!(out["affected"], serde_json::json!([[aiko_policy, "not_carried"]]), "{out}");
    assert_eq!((out["capped"].as_u64(), out["vouchers"].as_array().unwrap().len()), (Some(1), 0), "{out}");
    // A run skipping a stop nobody waited at, and one nobody rode, pay nothing.
    let elsewhere = kippu_gtfs::FeedSpec {
        skipped: vec![("1".into(), "101".into())],
        delays: vec![("11".into(), None, 3600)],
        ..Default::default()
    };
    let out = feed(elsewhere, t0 + 3).await;
    assert_eq!((out["delayed"].as_u64(), out["affected"].as_array().unwrap().len()), (Some(2), 0), "{out}");
    assert_eq!((vouchers(&aiko).await, vouchers(&ben).await), (1, 1));
    let mut claims = stack.store.claim_counts().await.unwrap();
    claims.sort();
    let want = [("not_carried", "capped", 1), ("not_carried", "voucher", 1), ("tapped", "voucher", 1)];
    assert_eq!(claims, want.map(|(a, b, n)| (a.to_string(), b.to_string(), n)).to_vec());
    stack.shutdown().await;
}

/// A real agency recording (OVapi TripUpdates, replayed as if sent now) pays exactly
/// the insured rider of its late run. Ben boards a vehicle whose validator declares it
/// works OVapi run 17921312 (a run of no timetable held here: the vehicle's word places
/// it), which the recording has 4¼ hours late; Aiko, insured too, rode nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_agency_recording_pays_the_rider_of_its_late_run() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let stack = kippu::start(config("agency-rt", None, None)).await.expect("stack starts");
    let (aiko, ben) = (Client::new(&stack.web_url), Client::new(&stack.web_url));
    let ben_key = deterministic_demo_key("ben");
    stack.chain.mint_fare(ben_key.address(), 5_000, alloy::primitives::B256::repeat_byte(8)).await.unwrap();
    for (c, key) in [(&aiko, deterministic_demo_key("aiko")), (&ben, ben_key)] {
        c.form("/signin", &[("address", &format!("{:#x}", key.address()))]).await;
        let (_, url, body) = c.form("/plans/1/buy", &[]).await;
        assert!(url.contains("bought="), "{url} {body}");
    }
    let bus = ben.ticket_of(2, None).await;
    assert_eq!(ben.ride(&stack.store, bus, "bus/bull-runner-7/onboard", Some("17921312")).await["open"], true);
    let real =
        std::fs::read(kippu_e2e::repo().join("services/kippu-gtfs/testdata/agency-rt/ovapi-trip-updates-subset.pb"))
            .unwrap();
    let live = kippu_gtfs::restamp(&real, now()).unwrap();
    let r = ben.http.post(format!("{}/dev/gtfs-rt", ben.base)).body(live).send().await.unwrap();
    let out: Value = r.json().await.unwrap();
    assert_eq!((out["trips"].as_u64(), out["cancelled"].as_u64()), (Some(23), Some(3)), "{out}");
    let policy =
        ben.me().await["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == 4).unwrap()["id"].clone();
    assert_eq!(out["affected"], serde_json::json!([[policy, "tapped"]]), "{out}");
    assert_eq!((vouchers(&aiko).await, vouchers(&ben).await), (0, 1));
    // The unmodified recording is from 2014: refused as stale, as a replayed message must be.
    let r = ben.http.post(format!("{}/dev/gtfs-rt", ben.base)).body(real).send().await.unwrap();
    assert_eq!(r.status(), 422);
    stack.shutdown().await;
}

/// k-of-n delay oracles: with a quorum of 2, this process's lone reporter only
/// records a vote; its replay is refused; an account without the oracle role
/// is refused; a second, independent reporter (its own key, outside this
/// process) completes the quorum and the voucher is issued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_or_replayed_oracle_report_pays_nothing() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let key_hex = |k: &alloy::signers::local::PrivateKeySigner| hex::encode(k.to_bytes());
    let r1 = deterministic_demo_key("oracle-reporter-1");
    let r2 = deterministic_demo_key("oracle-reporter-2");
    let mut cfg = config("oracle", None, None);
    cfg.insurance.quorum = 2;
    cfg.insurance.reporter_keys = vec![key_hex(&r1)];
    let stack = kippu::start(cfg).await.expect("stack starts");
    let c = Client::new(&stack.web_url);
    let aiko = deterministic_demo_key("aiko");
    c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    let (_, url, _) = c.form("/plans/1/buy", &[]).await;
    assert!(url.contains("bought="), "{url}");
    let me = c.me().await;
    let policy =
        me["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == 4).unwrap()["id"].as_u64().unwrap();
    let bus = c.ticket_of(2, None).await;
    assert_eq!(c.ride(&stack.store, bus, "bus/bull-runner-7/onboard", Some("1")).await["open"], true);

    // The feed reports bus trip 1 20 minutes late: one vote of two, no voucher.
    let feed = kippu_gtfs::encode_trip_updates(now() - 5, &[("1".into(), None, 20 * 60)]);
    let r = c.http.post(format!("{}/dev/gtfs-rt", c.base)).body(feed.clone()).send().await.unwrap();
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["delayed"], 1, "{out}");
    assert!(out["vouchers"].as_array().unwrap().is_empty(), "a lone reporter paid: {out}");
    let delay_id = alloy::primitives::B256::from(kippu_gtfs::decode_feed(&feed).unwrap()[0].delay_id());

    // The same reporter again (a replayed report): refused by the contract.
    let rpc = &stack.rpc_url;
    let again = stack.chain.as_account(rpc, &key_hex(&r1)).await.unwrap();
    let err = again.report_delay(delay_id, policy, 20).await.unwrap_err();
    assert!(err.to_string().contains("AlreadyVoted"), "{err}");
    // Someone without the oracle role: refused.
    let outsider = deterministic_demo_key("not-an-oracle");
    stack.chain.fund(outsider.address(), 10u128.pow(18)).await.unwrap();
    let err = stack
        .chain
        .as_account(rpc, &key_hex(&outsider))
        .await
        .unwrap()
        .report_delay(delay_id, policy, 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AccessControl"), "{err}");
    stack.indexer.catch_up().await.unwrap();
    assert!(c.me().await["vouchers"].as_array().unwrap().is_empty());

    // An independent second reporter completes the quorum: one voucher, at the lower reported delay.
    stack.chain.grant_oracle(r2.address()).await.unwrap();
    stack.chain.fund(r2.address(), 10u128.pow(18)).await.unwrap();
    let second = stack.chain.as_account(rpc, &key_hex(&r2)).await.unwrap();
    let voucher = second.report_delay(delay_id, policy, 45).await.unwrap();
    assert!(voucher.is_some(), "the second vote reaches the quorum");
    let err = again.report_delay(delay_id, policy, 20).await.unwrap_err();
    assert!(err.to_string().contains("AlreadyCompensated"), "{err}");
    stack.indexer.catch_up().await.unwrap();
    assert_eq!(c.me().await["vouchers"].as_array().unwrap().len(), 1);
    stack.shutdown().await;
}

/// The text of the QR code in a PNG, read as a scanner's camera would.
fn read_qr(png: &[u8]) -> String {
    let gray = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(gray);
    let grids = prepared.detect_grids();
    grids.first().expect("a QR code in the image").decode().unwrap().1
}

/// Operators import their static GTFS feed; a broken one is refused with what
/// is wrong and the current timetable stays in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gtfs_import_refuses_a_broken_feed_and_keeps_the_previous_one() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let stack = kippu::start(config("gtfs-import", None, None)).await.expect("stack starts");
    let c = Client::new(&stack.web_url);
    // The bus's timetable machine: reads and imports the bus's timetable with its API token.
    let token = staff_token(&stack, "bus", &[Permission::TimetableRead, Permission::TimetableWrite]).await;
    let timetable = |token: String| {
        let c = &c;
        async move {
            let r = c.http.get(format!("{}/operators/bus/timetable", c.base)).bearer_auth(token);
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let current = timetable(token.clone()).await;
    assert_eq!(current["version"], 1, "the seed imported the real Bull Runner feed: {current}");
    assert_eq!(current["summary"]["routes"].as_object().unwrap().len(), 6);
    let r = c.http.get(format!("{}/operators/bus/timetable", c.base)).send().await.unwrap();
    assert_eq!(r.url().path(), "/portal/signin", "only operator staff read timetables");
    let post = |body: Vec<u8>, auth: Option<String>| {
        let c = &c;
        async move {
            let mut r = c.http.post(format!("{}/operators/bus/timetable", c.base)).body(body);
            if let Some(t) = auth {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let real = std::fs::read(kippu_e2e::repo().join("services/kippu/src/dev/data/bullrunner-gtfs.zip")).unwrap();
    assert_eq!(post(real.clone(), None).await.0, 401, "only operator staff import timetables");
    let reader = staff_token(&stack, "bus", &[Permission::TimetableRead]).await;
    assert_eq!(post(real.clone(), Some(reader)).await.0, 403, "a token without timetable:write imports nothing");
    let taxi = staff_token(&stack, "taxi", &[Permission::TimetableRead, Permission::TimetableWrite]).await;
    assert_eq!(post(real.clone(), Some(taxi)).await.0, 403, "the taxi's token imports no bus timetable");
    let (status, body) = post(b"PK\x03\x04 truncated".to_vec(), Some(token.clone())).await;
    assert_eq!(status, 422, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(!v["problems"].as_array().unwrap().is_empty() && v["current_version"] == 1, "{v}");
    assert_eq!(timetable(token.clone()).await["version"], 1, "the previous timetable stays");
    let (status, body) = post(real, Some(token.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(timetable(token).await["version"], 2);
    stack.shutdown().await;
}
