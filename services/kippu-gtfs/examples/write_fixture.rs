//! Regenerates `testdata/bullrunner-trip-updates.pb`, the committed
//! GTFS-Realtime fixture, from real trip and route ids of the Bull Runner feed.
//!
//! Run from the workspace root: `cargo run -p kippu-gtfs --example write_fixture`.
//! The tests pin its contents, so a change here must go with a change there.

use kippu_gtfs::encode_trip_updates;

/// 2015-01-05 12:00:00 UTC, a Monday inside the feed's calendar ("Mo" service).
const FEED_TIMESTAMP: u64 = 1_420_459_200;

fn main() -> std::io::Result<()> {
    let delays = [
        // Route A (Green Campus Loop), Mo service: 7 min late.
        ("1".to_string(), Some("A".to_string()), 420),
        // Route B (Blue USF Health), Mo service: 2 min late.
        ("3".to_string(), Some("B".to_string()), 120),
        // Route D (Red Off-Campus West), Mo service: 15 min late.
        ("8".to_string(), Some("D".to_string()), 900),
        // Route F (Brown Off-Campus South), Mo service: 30 s early.
        ("13".to_string(), Some("F".to_string()), -30),
    ];
    let bytes = encode_trip_updates(FEED_TIMESTAMP, &delays);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/bullrunner-trip-updates.pb");
    std::fs::write(path, &bytes)?;
    println!("wrote {} bytes to {path}", bytes.len());
    Ok(())
}
