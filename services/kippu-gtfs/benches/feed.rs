//! Feed processing speed: a 10,000-trip GTFS-Realtime message from bytes to the
//! affected-traveler decisions: decode, freshness and order screening, per-trip
//! supersession, threshold, trip → route lookup, then, against 50,000 recent taps
//! (indexed afresh for every message, as the insurer does), which insured plans
//! rode each late run or were left waiting at a stop of a cancelled or skipping one.
//! The payout itself (database claim, chain transaction) is per voucher and not
//! part of this figure.
//! Run: `cargo bench -p kippu-gtfs --bench feed`

use std::collections::HashMap;
use std::time::Instant;

use kippu_gtfs::{affected, affected_by, encode_feed, FeedGuard, FeedSpec, RiderIndex, RiderTap, Windows};

fn main() {
    const TRIPS: usize = 10_000;
    const ROUNDS: u64 = 20;
    const RIDERS: usize = 50_000;
    let now = 1_800_000_000u64;
    // One route per 100 trips, 20 stops a trip, as a mid-sized agency's timetable would have.
    let trip_routes: HashMap<String, String> = (0..TRIPS).map(|i| (i.to_string(), format!("R{}", i / 100))).collect();
    let trip_stops: HashMap<String, Vec<String>> =
        (0..TRIPS).map(|i| (i.to_string(), (0..20).map(|s| format!("S{}", (i / 100) * 20 + s)).collect())).collect();
    let feeds: Vec<Vec<u8>> = (0..ROUNDS)
        .map(|r| {
            let spec = FeedSpec {
                delays: (0..TRIPS)
                    .filter(|i| i % 100 != 0)
                    .map(|i| (i.to_string(), None, ((i as i32 * 37 + r as i32) % 3600) - 300))
                    .collect(),
                // 1 % of the runs cancelled.
                cancelled: (0..TRIPS).filter(|i| i % 100 == 0).map(|i| i.to_string()).collect(),
                ..Default::default()
            };
            encode_feed(now - ROUNDS + r, &spec)
        })
        .collect();
    // 40,000 riders tapped on board a run, 10,000 at a stop gate, within the last hour.
    let taps: Vec<(u64, RiderTap)> = (0..RIDERS)
        .map(|i| {
            let at = now as i64 - (i as i64 % 3600);
            let tap = if i % 5 == 4 {
                RiderTap {
                    ticket_id: i as u64,
                    at,
                    stop_id: Some(format!("S{}", i % (TRIPS / 5))),
                    ..Default::default()
                }
            } else {
                RiderTap { ticket_id: i as u64, at, trip_id: Some((i * 7 % TRIPS).to_string()), ..Default::default() }
            };
            (i as u64, tap)
        })
        .collect();
    let bytes = feeds[0].len();
    let mut guard = FeedGuard::new(3600, 30);
    let (mut late, mut routed, mut looked_at, mut paid) = (0usize, 0usize, 0usize, 0usize);
    let mut worst = std::time::Duration::ZERO;
    let start = Instant::now();
    for f in &feeds {
        let t = Instant::now();
        let accepted = guard.accept(f, now).expect("fresh feed");
        let riders = RiderIndex::new(taps.iter().map(|(plan, tap)| (*plan, tap.clone(), ())));
        for d in accepted.delays.iter().filter(|d| d.cancelled || affected(d, 15)) {
            late += 1;
            routed += usize::from(trip_routes.contains_key(&d.trip_id));
            let stops: Vec<&str> = trip_stops.get(&d.trip_id).into_iter().flatten().map(String::as_str).collect();
            for plan in riders.plans_near(d, &stops) {
                looked_at += 1;
                let mine: Vec<RiderTap> = riders.of_plan(plan).map(|(t, _)| t.clone()).collect();
                paid += usize::from(affected_by(d, &stops, &mine, now as i64, 15, Windows::default()).is_some());
            }
        }
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();
    let per_feed = total / ROUNDS as u32;
    println!("feed of {TRIPS} TripUpdates ({bytes} bytes, 1 % cancelled), {RIDERS} recent taps, {ROUNDS} successive messages, release build");
    println!("  per message: {:.1} ms mean, {:.1} ms worst", per_feed.as_secs_f64() * 1e3, worst.as_secs_f64() * 1e3);
    println!(
        "  throughput:  {:.0} TripUpdates/s to affected-traveler decisions",
        (TRIPS as f64 * ROUNDS as f64) / total.as_secs_f64()
    );
    println!(
        "  decisions:   {late} late or cancelled runs ({routed} routed), {looked_at} plans examined, {paid} affected"
    );
    assert!(paid > 0 && paid <= looked_at, "the rider population must produce affected travelers");
    assert!(per_feed.as_secs_f64() < 1.0, "issue 5 target: a 10,000-trip feed in under one second");
}
