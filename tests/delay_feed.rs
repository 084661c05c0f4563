//! The delay insurer polling a GTFS-Realtime URL on a schedule, as it would
//! an agency's feed: a late trip pays its insured traveler once, however many
//! times the unchanged (or restated) feed is fetched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use kippu_e2e::{config, now, Client};
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
