//! Feed processing speed: a 10,000-trip GTFS-Realtime message from bytes to
//! the decision of which trips are late enough to pay (decode, freshness and
//! order screening, per-trip supersession, threshold, trip → route lookup).
//! The payout itself (database claim, chain transaction) is per voucher and
//! not part of this figure.
//! Run: `cargo bench -p kippu-gtfs --bench feed`

use std::collections::HashMap;
use std::time::Instant;

use kippu_gtfs::{affected, encode_trip_updates, FeedGuard};

fn main() {
    const TRIPS: usize = 10_000;
    const ROUNDS: u64 = 20;
    let now = 1_800_000_000u64;
    // One route per 100 trips, as a mid-sized agency's timetable would have.
    let trip_routes: HashMap<String, String> = (0..TRIPS).map(|i| (i.to_string(), format!("R{}", i / 100))).collect();
    let feeds: Vec<Vec<u8>> = (0..ROUNDS)
        .map(|r| {
            let items: Vec<_> =
                (0..TRIPS).map(|i| (i.to_string(), None, ((i as i32 * 37 + r as i32) % 3600) - 300)).collect();
            encode_trip_updates(now - ROUNDS + r, &items)
        })
        .collect();
    let bytes = feeds[0].len();
    let mut guard = FeedGuard::new(3600, 30);
    let mut late = 0usize;
    let mut routed = 0usize;
    let mut worst = std::time::Duration::ZERO;
    let start = Instant::now();
    for f in &feeds {
        let t = Instant::now();
        let accepted = guard.accept(f, now).expect("fresh feed");
        for d in accepted.delays.iter().filter(|d| affected(d, 15)) {
            late += 1;
            routed += usize::from(trip_routes.contains_key(&d.trip_id));
        }
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();
    let per_feed = total / ROUNDS as u32;
    println!("feed of {TRIPS} TripUpdates ({bytes} bytes), {ROUNDS} successive messages, release build");
    println!("  per message: {:.1} ms mean, {:.1} ms worst", per_feed.as_secs_f64() * 1e3, worst.as_secs_f64() * 1e3);
    println!("  throughput:  {:.0} TripUpdates/s", (TRIPS as f64 * ROUNDS as f64) / total.as_secs_f64());
    println!("  decisions:   {late} late trips found, {routed} routed to an operator");
    assert!(per_feed.as_secs_f64() < 1.0, "issue 5 target: a 10,000-trip feed in under one second");
}
