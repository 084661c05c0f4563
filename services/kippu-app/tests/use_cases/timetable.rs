//! Importing an operator's GTFS timetable.

use kippu_app::timetable::*;
use kippu_domain::model::Product;

use crate::support::*;

const FEED: &[u8] = include_bytes!("../../../kippu-gtfs/testdata/bullrunner-gtfs.zip");

fn product(id: u32, operator_id: u32, routes: &[&str], zones: &[&str]) -> Product {
    Product {
        id,
        operator_id,
        name: format!("p{id}"),
        price: 1,
        duration_secs: 1,
        rides: 1,
        insurance: false,
        routes: routes.iter().map(|r| r.to_string()).collect(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
    }
}

fn world() -> (FakeStore, FakeNotifier) {
    let store = FakeStore::default();
    store.state().operators.push(operator(2, "bullrunner"));
    store.state().products.push(product(1, 2, &["A", "B"], &[]));
    (store, FakeNotifier::default())
}

#[tokio::test]
async fn a_feed_becomes_the_next_version_and_the_matcher_learns_it() {
    let (store, notifier) = world();
    let first = import_timetable(&store, &notifier, &CLOCK, "bullrunner", FEED.to_vec()).await.unwrap();
    assert_eq!(first.version, 1);
    assert!(first.summary.trips > 0 && first.summary.routes.contains_key("A"), "{:?}", first.summary);
    assert_eq!(notifier.notices(), [Notice::TimetableImported(2, first.summary.trips)]);
    let row = store.state().timetables[0].clone();
    assert_eq!((row.operator_slug.as_str(), row.imported_at), ("bullrunner", NOW));
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(&row.feed).unwrap(), FEED, "the feed is kept as sent");
    assert_eq!(serde_json::from_str::<kippu_gtfs::TimetableSummary>(&row.summary).unwrap(), first.summary);
    let second = import_timetable(&store, &notifier, &CLOCK, "bullrunner", FEED.to_vec()).await.unwrap();
    assert_eq!(second.version, 2);
}

#[tokio::test]
async fn a_refused_feed_keeps_the_current_timetable() {
    let (store, notifier) = world();
    let err = import_timetable(&store, &notifier, &CLOCK, "bullrunner", b"not a zip".to_vec()).await.unwrap_err();
    let ImportTimetableError::Refused { problems, current_version: None } = err else { panic!("{err:?}") };
    assert!(!problems.is_empty());

    import_timetable(&store, &notifier, &CLOCK, "bullrunner", FEED.to_vec()).await.unwrap();
    // A product sold for a route and a zone this feed does not have would be stranded.
    store.state().products.push(product(3, 2, &["A", "Z"], &["2"]));
    let err = import_timetable(&store, &notifier, &CLOCK, "bullrunner", FEED.to_vec()).await.unwrap_err();
    assert_eq!(
        err,
        ImportTimetableError::Refused {
            problems: vec![
                "product 3 (p3) is sold for route \"Z\", which this feed does not have".into(),
                "product 3 (p3) is sold for zone \"2\", which this feed does not have".into(),
            ],
            current_version: Some(1),
        }
    );
    assert_eq!(store.state().timetables.len(), 1);
    assert_eq!(store.state().timetables[0].version, 1);
    assert_eq!(notifier.notices().len(), 1, "only the accepted feed was announced");
}

#[tokio::test]
async fn an_unknown_operator_or_a_failing_store() {
    let (store, notifier) = world();
    let err = import_timetable(&store, &notifier, &CLOCK, "nobody", FEED.to_vec()).await.unwrap_err();
    assert_eq!(err.to_string(), "No operator \"nobody\".");
    assert_eq!(err, ImportTimetableError::UnknownOperator { slug: "nobody".into() });
    store.fail("save_timetable");
    let err = import_timetable(&store, &notifier, &CLOCK, "bullrunner", FEED.to_vec()).await.unwrap_err();
    assert!(matches!(err, ImportTimetableError::Store(_)));
    assert!(notifier.notices().is_empty());
}

#[test]
fn only_this_operators_products_constrain_its_feed() {
    let summary = kippu_gtfs::TimetableSummary {
        agencies: vec![],
        routes: [("A".to_string(), "A".to_string())].into(),
        stops: 0,
        trips: 0,
        stop_times: 0,
        services: 0,
        zones: ["1".to_string()].into(),
    };
    let products = [
        product(1, 2, &["A"], &["1"]),
        product(2, 2, &[], &[]),
        product(3, 2, &["A", "F"], &["2"]),
        product(4, 9, &["Z"], &[]),
    ];
    assert_eq!(
        products_left_without_network(&products, 2, &summary),
        [
            "product 3 (p3) is sold for route \"F\", which this feed does not have",
            "product 3 (p3) is sold for zone \"2\", which this feed does not have",
        ],
        "another operator's product 4 is not this feed's business"
    );
}
