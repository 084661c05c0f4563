//! Tests on GTFS-Realtime bytes recorded from a real publisher, not written by
//! us or by a test helper (see testdata/agency-rt/README.md).
//!
//! `bods-gtfsrt.bin` is a response of the UK Bus Open Data Service's
//! GTFS-Realtime endpoint (VehiclePositions only). Every expected value below
//! was read independently from the file with Google's `gtfs-realtime-bindings`
//! 3.0.0 for Python, not from kippu-gtfs.

use kippu_gtfs::{
    decode_feed, decode_message,
    proto::{feed_header::Incrementality, trip_descriptor::ScheduleRelationship, FeedMessage, Message},
    Accepted, FeedContent, FeedGuard, FeedRejection,
};

const BODS: &[u8] = include_bytes!("../testdata/agency-rt/bods-gtfsrt.bin");

/// `header.timestamp` of the BODS sample: 2022-01-31 19:51:58 UTC.
const BODS_TS: u64 = 1_643_658_718;

fn bods_message() -> FeedMessage {
    FeedMessage::decode(BODS).expect("the BODS sample is a valid FeedMessage")
}

#[test]
fn bods_sample_keeps_its_recorded_size() {
    // The copy must stay byte-identical to the package's file; its SHA-256
    // (96bfdf76…bbee136) is in the README, the size is the cheap check here.
    assert_eq!(BODS.len(), 352);
}

#[test]
fn bods_header_is_read_as_published() {
    let msg = bods_message();
    assert_eq!(msg.header.gtfs_realtime_version, "2.0");
    assert_eq!(msg.header.incrementality(), Incrementality::FullDataset);
    assert_eq!(msg.header.timestamp, Some(BODS_TS));
}

#[test]
fn bods_entities_are_four_vehicle_positions() {
    let msg = bods_message();
    assert_eq!(msg.entity.len(), 4);
    let ids: Vec<&str> = msg.entity.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["5988548390748957547", "16204335836654081101", "4999199204084084257", "8177588499209270467"]);
    for e in &msg.entity {
        assert!(e.vehicle.is_some(), "entity {} carries a VehiclePosition", e.id);
        assert!(e.trip_update.is_none() && e.alert.is_none(), "entity {} carries only a VehiclePosition", e.id);
        assert_ne!(e.is_deleted, Some(true));
    }

    let vehicles: Vec<_> = msg.entity.iter().map(|e| e.vehicle.as_ref().unwrap()).collect();
    let vehicle_ids: Vec<&str> =
        vehicles.iter().map(|v| v.vehicle.as_ref().and_then(|d| d.id.as_deref()).unwrap_or("")).collect();
    assert_eq!(vehicle_ids, ["SN61DFZ", "6125", "502", "LX13CZS"]);
    let measured: Vec<Option<u64>> = vehicles.iter().map(|v| v.timestamp).collect();
    assert_eq!(measured, [Some(1_643_646_311), Some(1_643_648_985), Some(1_643_644_169), Some(1_643_647_103)]);

    // All positions lie inside the bounding box the BODS query asked for
    // (lat 51.26..51.75, lon -0.54..0.27: south-east of London).
    for v in &vehicles {
        let p = v.position.as_ref().expect("every entity has a position");
        assert!((51.26..=51.75).contains(&p.latitude), "latitude {}", p.latitude);
        assert!((-0.54..=0.27).contains(&p.longitude), "longitude {}", p.longitude);
    }
    let first = vehicles[0].position.as_ref().unwrap();
    assert!((first.latitude - 51.282_772).abs() < 1e-5 && (first.longitude - -0.077_688).abs() < 1e-5);
    assert_eq!(first.bearing, Some(315.0));

    // Three vehicles are not matched to a journey: the publisher sends the
    // trip descriptor with *empty* trip_id/route_id rather than leaving it out.
    for v in &vehicles[..3] {
        let trip = v.trip.as_ref().expect("BODS always sends a trip descriptor");
        assert_eq!(trip.trip_id.as_deref(), Some(""));
        assert_eq!(trip.route_id.as_deref(), Some(""));
    }
    // The fourth is matched to a real BODS vehicle journey.
    let trip = vehicles[3].trip.as_ref().unwrap();
    assert_eq!(trip.trip_id.as_deref(), Some("VJ8ee628a517f87b748125cb18c3a3e29796edc00a"));
    assert_eq!(trip.route_id.as_deref(), Some("11191"));
    assert_eq!(trip.start_date.as_deref(), Some("20220131"));
    assert_eq!(trip.start_time.as_deref(), Some("15:52:00"));
    assert_eq!(trip.schedule_relationship(), ScheduleRelationship::Scheduled);
    assert_eq!(vehicles[3].current_stop_sequence, Some(44));
    assert_eq!(vehicles[3].vehicle.as_ref().and_then(|d| d.label.as_deref()), Some("LX13CZS"));
}

#[test]
fn bods_sample_has_no_trip_delays_and_no_alerts() {
    // A VehiclePositions-only message is a valid feed that reports no delay:
    // it must be accepted and yield nothing but its header time, not fail.
    assert_eq!(decode_feed(BODS).unwrap(), vec![]);
    assert_eq!(decode_message(BODS).unwrap(), FeedContent { timestamp: BODS_TS, delays: vec![], alerts: vec![] });
}

#[test]
fn guard_accepts_the_bods_message_at_its_own_time_and_refuses_it_again() {
    let mut guard = FeedGuard::new(300, 30);
    // No TripUpdate, so the guard must take the timestamp from the header.
    assert_eq!(guard.accept(BODS, BODS_TS), Ok(Accepted { timestamp: BODS_TS, ..Accepted::default() }));
    assert_eq!(guard.accept(BODS, BODS_TS), Err(FeedRejection::Duplicate(BODS_TS)));
    // Still a duplicate a little later, while it is within the age limit.
    assert_eq!(guard.accept(BODS, BODS_TS + 60), Err(FeedRejection::Duplicate(BODS_TS)));
}

#[test]
fn guard_judges_the_bods_message_by_its_header_time() {
    // Replayed today, the 2022 recording is stale ...
    let mut guard = FeedGuard::new(300, 30);
    assert_eq!(guard.accept(BODS, BODS_TS + 301), Err(FeedRejection::Stale { age_secs: 301, max_age_secs: 300 }));
    // ... and received before it was written, it is from the future; neither
    // refusal consumes the message, so it still passes at the right time.
    assert_eq!(guard.accept(BODS, BODS_TS - 31), Err(FeedRejection::FromTheFuture { ahead_secs: 31 }));
    assert!(guard.accept(BODS, BODS_TS).is_ok());
}

// ---------------------------------------------------------------------------
// OVapi (the Netherlands): real TripUpdates, cut on the wire from the message
// shipped in gtfsr-kit 8.0.1 (see the README and testdata/gen/subset_ovapi.py).
// Expected values read with Google's Python bindings.

const OVAPI: &[u8] = include_bytes!("../testdata/agency-rt/ovapi-trip-updates-subset.pb");

/// `header.timestamp`: 2014-11-30 22:46:23 UTC.
const OVAPI_TS: u64 = 1_417_387_583;

fn ovapi() -> FeedContent {
    decode_message(OVAPI).expect("the OVapi subset decodes")
}

#[test]
fn ovapi_trip_updates_decode_as_the_python_bindings_read_them() {
    assert_eq!(OVAPI.len(), 19_898);
    let got = ovapi();
    assert_eq!(got.timestamp, OVAPI_TS);
    assert_eq!(got.delays.len(), 23);
    assert!(got.alerts.is_empty());
    let run = |trip: &str| got.delays.iter().find(|d| d.trip_id == trip).unwrap_or_else(|| panic!("trip {trip}"));
    // Syntus line 62: four and a quarter hours late; Connexxion L019: 19 seconds.
    assert_eq!(run("17921312").delay_secs, 15_294);
    assert_eq!(run("17921312").entity_id, "2014-11-30:SYNTUS:62:10794");
    assert_eq!(run("8803145").delay_secs, 19);
    assert_eq!(run("8803145").start_date.as_deref(), Some("20141130"));
    let mut cancelled: Vec<&str> = got.delays.iter().filter(|d| d.cancelled).map(|d| d.trip_id.as_str()).collect();
    cancelled.sort_unstable();
    assert_eq!(cancelled, ["10380012", "18173164", "18178225"]);
    // RET line 18 skips two stops; OVapi also lists a cancelled run's stops as skipped.
    assert_eq!(run("18695861").skipped_stops, ["51814", "49995"]);
    assert!(!run("18695861").cancelled);
    assert_eq!(&run("18173164").skipped_stops[..3], ["16271", "16273", "16267"]);
    // OVapi leaves route_id empty: unknown, not "".
    assert!(got.delays.iter().all(|d| d.route_id.is_none()));
}

#[test]
fn ovapi_message_passes_the_guard_once() {
    let mut guard = FeedGuard::new(300, 30);
    let a: Accepted = guard.accept(OVAPI, OVAPI_TS + 5).expect("fresh");
    assert_eq!(a.delays.len(), 23);
    assert_eq!(guard.accept(OVAPI, OVAPI_TS + 6), Err(FeedRejection::Duplicate(OVAPI_TS)));
    assert!(matches!(FeedGuard::new(300, 30).accept(OVAPI, OVAPI_TS + 3600), Err(FeedRejection::Stale { .. })));
}

#[test]
fn who_is_affected_on_real_ovapi_runs() {
    use kippu_gtfs::{affected_by, Affected, RiderTap, Windows};
    let got = ovapi();
    let run = |trip: &str| got.delays.iter().find(|d| d.trip_id == trip).unwrap();
    let now = OVAPI_TS as i64;
    let w = Windows::default();
    let on_board = |trip: &str| RiderTap {
        ticket_id: 1,
        at: now - 1800,
        trip_id: Some(trip.into()),
        trip_date: Some("20141130".into()),
        stop_id: None,
    };
    let at_stop =
        |stop: &str| RiderTap { ticket_id: 1, at: now - 600, stop_id: Some(stop.into()), ..Default::default() };
    let why = |trip: &str, taps: &[RiderTap]| affected_by(run(trip), &[], taps, now, 15, w).map(|(a, _)| a);
    assert_eq!(why("17921312", &[on_board("17921312")]), Some(Affected::Tapped), "4 h late, rode it");
    assert_eq!(why("8803145", &[on_board("8803145")]), None, "19 s late");
    assert_eq!(why("17921312", &[on_board("8803145")]), None, "rode another run");
    assert_eq!(why("10380012", &[on_board("10380012")]), Some(Affected::Tapped), "on board a cancelled run");
    assert_eq!(why("18695861", &[at_stop("51814")]), Some(Affected::NotCarried), "waiting at a skipped stop");
    assert_eq!(why("18695861", &[at_stop("50434")]), None, "a stop that run still serves");
    assert_eq!(why("18173164", &[at_stop("16271")]), Some(Affected::NotCarried), "a stop of a cancelled run");
}
