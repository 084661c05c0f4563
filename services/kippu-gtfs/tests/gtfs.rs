//! Tests against real data: the USF Bull Runner static feed and GTFS-Realtime
//! bytes made from its trip ids (see testdata/README.md).

use kippu_gtfs::{
    affected, decode_feed, delay_minutes, encode_trip_updates, import_timetable,
    proto::{FeedEntity, FeedHeader, FeedMessage, Message},
    GtfsError, TripDelay,
};

const BULLRUNNER_ZIP: &[u8] = include_bytes!("../testdata/bullrunner-gtfs.zip");
const OUR_FIXTURE: &[u8] = include_bytes!("../testdata/bullrunner-trip-updates.pb");
const GOOGLE_FIXTURE: &[u8] = include_bytes!("../testdata/bullrunner-google-encoded.pb");

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn round_trip_encode_decode() {
    let input = vec![(s("1"), Some(s("A")), 420), (s("9"), None, -45), (s("1"), Some(s("A")), 0)];
    let bytes = encode_trip_updates(1_700_000_000, &input);
    let got = decode_feed(&bytes).unwrap();
    assert_eq!(got.len(), 3);
    for (d, (trip, route, delay)) in got.iter().zip(&input) {
        assert_eq!(&d.trip_id, trip);
        assert_eq!(&d.route_id, route);
        assert_eq!(d.delay_secs, *delay);
        assert_eq!(d.start_date, None);
        assert_eq!(d.feed_timestamp, 1_700_000_000);
    }
    // The same trip listed twice still gets distinct entity ids.
    assert_ne!(got[0].entity_id, got[2].entity_id);

    // The header is what the GTFS-Realtime spec asks for.
    let msg = FeedMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(msg.header.gtfs_realtime_version, "2.0");
    assert_eq!(msg.header.incrementality(), kippu_gtfs::proto::feed_header::Incrementality::FullDataset);
    assert_eq!(msg.header.timestamp, Some(1_700_000_000));
}

#[test]
fn empty_delay_list_is_a_valid_empty_feed() {
    let bytes = encode_trip_updates(42, &[]);
    assert_eq!(decode_feed(&bytes).unwrap(), vec![]);
}

#[test]
fn committed_fixture_from_our_encoder() {
    // Pinned so an encoder change that alters the wire bytes is noticed.
    assert_eq!(
        encode_trip_updates(
            1_420_459_200,
            &[
                (s("1"), Some(s("A")), 420),
                (s("3"), Some(s("B")), 120),
                (s("8"), Some(s("D")), 900),
                (s("13"), Some(s("F")), -30),
            ],
        ),
        OUR_FIXTURE
    );
    let got = decode_feed(OUR_FIXTURE).unwrap();
    let summary: Vec<_> =
        got.iter().map(|d| (d.entity_id.as_str(), d.trip_id.as_str(), d.route_id.as_deref(), d.delay_secs)).collect();
    assert_eq!(
        summary,
        [
            ("tu-0-1", "1", Some("A"), 420),
            ("tu-1-3", "3", Some("B"), 120),
            ("tu-2-8", "8", Some("D"), 900),
            ("tu-3-13", "13", Some("F"), -30),
        ]
    );
    assert!(got.iter().all(|d| d.feed_timestamp == 1_420_459_200));
    let late: Vec<_> = got.iter().filter(|d| affected(d, 5)).map(|d| &d.trip_id).collect();
    assert_eq!(late, ["1", "8"]);
}

#[test]
fn fixture_from_googles_bindings() {
    // Written by gtfs-realtime-bindings (Python), not by this crate.
    let got = decode_feed(GOOGLE_FIXTURE).unwrap();
    assert_eq!(
        got,
        vec![
            TripDelay {
                entity_id: s("c-5"),
                trip_id: s("5"),
                route_id: Some(s("C")),
                start_date: Some(s("20150105")),
                // max(trip 240, arrivals 300/600, departure 660)
                delay_secs: 660,
                feed_timestamp: 1_420_459_260,
                measured_at: None,
                start_time: Some(s("08:00:00")),
                observed: vec![],
                ..Default::default()
            },
            TripDelay {
                entity_id: s("e-11"),
                trip_id: s("11"),
                route_id: None,
                start_date: None,
                delay_secs: 0,
                feed_timestamp: 1_420_459_260,
                measured_at: None,
                start_time: None,
                // An absolute arrival time, no delay: measured against the timetable instead.
                observed: vec![kippu_gtfs::ObservedStop {
                    stop_sequence: None,
                    stop_id: Some(s("222")),
                    time: 1_420_459_500
                }],
                ..Default::default()
            },
        ]
    );
    assert_eq!(delay_minutes(got[0].delay_secs), 11);
    assert!(affected(&got[0], 11));
    assert!(!affected(&got[0], 12));
}

#[test]
fn garbage_bytes_are_an_error() {
    for bad in [
        &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
        b"not a protobuf at all",
        b"\x0f",
        // Field 1 declared as a 100-byte message with 1 byte present.
        b"\x0a\x64\x00",
    ] {
        assert!(decode_feed(bad).is_err(), "{bad:?} decoded");
    }
}

#[test]
fn empty_or_headerless_input_is_an_error() {
    assert!(matches!(decode_feed(b""), Err(GtfsError::MissingHeader)));
    let headerless =
        FeedMessage { header: FeedHeader::default(), entity: vec![FeedEntity { id: s("x"), ..Default::default() }] }
            .encode_to_vec();
    assert!(matches!(decode_feed(&headerless), Err(GtfsError::MissingHeader)));
}

#[test]
fn truncated_message_is_an_error() {
    // Dropping the last byte always cuts into the last entity, whose declared
    // length then overruns the buffer.
    for fixture in [OUR_FIXTURE, GOOGLE_FIXTURE] {
        let cut = &fixture[..fixture.len() - 1];
        assert!(matches!(decode_feed(cut), Err(GtfsError::Decode(_))));
    }
    // No prefix may panic; some end on a field boundary and legitimately
    // decode, which is inherent to protobuf (it has no end marker).
    for len in 0..GOOGLE_FIXTURE.len() {
        let _ = decode_feed(&GOOGLE_FIXTURE[..len]);
    }
}

#[test]
fn delay_id_matches_independent_keccak_and_separates_runs() {
    let run = |date: Option<&str>| TripDelay {
        entity_id: s("whatever"),
        trip_id: s("5"),
        route_id: Some(s("C")),
        start_date: date.map(s),
        delay_secs: 660,
        feed_timestamp: 1,
        measured_at: None,
        start_time: None,
        observed: vec![],
        ..Default::default()
    };
    // Expected values from pycryptodome's Keccak-256, i.e. what Solidity's
    // keccak256(bytes("5|20150105")) returns.
    assert_eq!(
        hex::encode(run(Some("20150105")).delay_id()),
        "94b498d42afe62ae5424ede482b96079220a5f2e7e3cce6ce33cc950259a3f70"
    );
    assert_eq!(
        hex::encode(run(Some("20150106")).delay_id()),
        "d51fe1b11d36786eddbce116f05f54fb124dd72dcfd3110a5498106027e4f62c"
    );
    let mut one = run(None);
    one.trip_id = s("1");
    assert_eq!(hex::encode(one.delay_id()), "9542520ab868e156b289fc9c681aa466c5d4b4733ad539fbbb18c840f905141e");

    // Stable across feed messages: only trip_id and start_date matter.
    let mut later = run(Some("20150105"));
    later.entity_id = s("other");
    later.delay_secs = 900;
    later.feed_timestamp = 99;
    later.route_id = None;
    assert_eq!(later.delay_id(), run(Some("20150105")).delay_id());
    assert_ne!(run(Some("20150105")).delay_id(), run(None).delay_id());
}

#[test]
fn bullrunner_timetable() {
    let t = import_timetable(BULLRUNNER_ZIP).unwrap();
    let ids: Vec<_> = t.summary.routes.keys().map(String::as_str).collect();
    assert_eq!(ids, ["A", "B", "C", "D", "E", "F"]);
    assert_eq!(t.summary.routes["A"], "A");
    assert_eq!(t.summary.trips, 15);
    assert_eq!(t.trip_routes["1"], "A");
    // Every trip id the realtime fixtures use exists in the static feed.
    for id in ["1", "3", "5", "8", "11", "13"] {
        assert!(t.trip_routes.contains_key(id), "trip {id}");
    }
}

#[test]
fn cancellations_skipped_stops_and_alerts_survive_the_wire() {
    use kippu_gtfs::{decode_message, encode_feed, FeedSpec, ServiceAlert};
    let alert = ServiceAlert {
        id: s("storm"),
        cause: s("WEATHER"),
        effect: s("NO_SERVICE"),
        header: s("Route C suspended"),
        description: s("Flooding on Fowler Ave"),
        active: vec![(Some(1_420_459_000), Some(1_420_470_000))],
        routes: vec![s("C")],
        trips: vec![s("5")],
        stops: vec![],
    };
    let bytes = encode_feed(
        1_420_459_260,
        &FeedSpec {
            delays: vec![(s("1"), Some(s("A")), 420)],
            cancelled: vec![s("5")],
            skipped: vec![(s("8"), s("222"))],
            alerts: vec![alert.clone()],
        },
    );
    let got = decode_message(&bytes).unwrap();
    assert_eq!(got.timestamp, 1_420_459_260);
    assert_eq!(got.delays.len(), 3);
    assert!(!got.delays[0].cancelled && got.delays[0].skipped_stops.is_empty());
    assert!(got.delays[1].cancelled && got.delays[1].trip_id == "5");
    assert_eq!(got.delays[2].skipped_stops, vec![s("222")]);
    assert_eq!(got.alerts, vec![alert.clone()]);
    assert!(alert.active_at(1_420_459_260));
    assert!(!alert.active_at(1_420_470_000), "an active period's end is exclusive");
    // A message with nothing but an alert still carries its timestamp.
    let only = encode_feed(7, &FeedSpec { alerts: vec![alert], ..Default::default() });
    assert_eq!(decode_message(&only).unwrap().timestamp, 7);
}

#[test]
fn a_restamped_recording_is_fresh_and_keeps_its_delays() {
    let live = kippu_gtfs::restamp(GOOGLE_FIXTURE, 1_800_000_000).unwrap();
    let (old, new) = (decode_feed(GOOGLE_FIXTURE).unwrap(), decode_feed(&live).unwrap());
    assert_eq!(new[0].feed_timestamp, 1_800_000_000);
    assert_eq!(new[0].delay_secs, old[0].delay_secs);
    let shift = 1_800_000_000 - 1_420_459_260;
    assert_eq!(new[1].observed[0].time, old[1].observed[0].time + shift, "absolute times move with the header");
    assert!(kippu_gtfs::restamp(b"junk", 1).is_err());
}
