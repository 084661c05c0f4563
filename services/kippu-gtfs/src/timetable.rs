//! Importing an operator's static GTFS feed: read with the rust-transit
//! `gtfs-structures` reader (which also checks every cross-reference), then
//! checked for what Kippu relies on. A feed that fails is reported with
//! everything found wrong, and the caller keeps the previous timetable.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use serde::Serialize;

/// What a successful import contains, in numbers people can check against the agency's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimetableSummary {
    /// Agency names.
    pub agencies: Vec<String>,
    /// Routes, `route_id → short or long name`.
    pub routes: BTreeMap<String, String>,
    /// Stops.
    pub stops: usize,
    /// Trips.
    pub trips: usize,
    /// Stop times over all trips.
    pub stop_times: usize,
    /// Services (calendar and calendar_dates) defined.
    pub services: usize,
}

/// An imported timetable: what policies and delay matching need.
#[derive(Debug, Clone)]
pub struct Timetable {
    /// Summary of the feed.
    pub summary: TimetableSummary,
    /// `trip_id → route_id`.
    pub trip_routes: HashMap<String, String>,
}

/// Why a feed was refused: every problem found, each naming the file or object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("GTFS feed refused: {}", problems.join("; "))]
pub struct ImportReport {
    /// What is wrong.
    pub problems: Vec<String>,
}

/// Reads and checks a GTFS zip.
pub fn import_timetable(zip: &[u8]) -> Result<Timetable, ImportReport> {
    let refuse = |p: String| ImportReport { problems: vec![p] };
    let gtfs = gtfs_structures::Gtfs::from_reader(Cursor::new(zip)).map_err(|e| refuse(describe(&e)))?;
    let mut problems = Vec::new();
    if gtfs.agencies.is_empty() {
        problems.push("agency.txt lists no agency".to_owned());
    }
    if gtfs.routes.is_empty() {
        problems.push("routes.txt lists no route".to_owned());
    }
    if gtfs.trips.is_empty() {
        problems.push("trips.txt lists no trip".to_owned());
    }
    if gtfs.calendar.is_empty() && gtfs.calendar_dates.is_empty() {
        problems.push("neither calendar.txt nor calendar_dates.txt defines a service".to_owned());
    }
    let mut short: Vec<&str> = gtfs.trips.values().filter(|t| t.stop_times.len() < 2).map(|t| t.id.as_str()).collect();
    short.sort_unstable();
    if !short.is_empty() {
        let shown: Vec<&str> = short.iter().take(5).copied().collect();
        problems.push(format!("{} trip(s) with fewer than 2 stop times (e.g. {})", short.len(), shown.join(", ")));
    }
    let mut unrouted: Vec<String> = gtfs
        .trips
        .values()
        .filter(|t| !gtfs.routes.contains_key(&t.route_id))
        .map(|t| format!("{} (route {})", t.id, t.route_id))
        .collect();
    unrouted.sort_unstable();
    if !unrouted.is_empty() {
        problems.push(format!("{} trip(s) on a route routes.txt does not list, e.g. {}", unrouted.len(), unrouted[0]));
    }
    let mut no_service: Vec<&str> = gtfs
        .trips
        .values()
        .filter(|t| !gtfs.calendar.contains_key(&t.service_id) && !gtfs.calendar_dates.contains_key(&t.service_id))
        .map(|t| t.id.as_str())
        .collect();
    no_service.sort_unstable();
    if !no_service.is_empty() {
        problems.push(format!(
            "{} trip(s) on a service no calendar defines (e.g. {})",
            no_service.len(),
            no_service[0]
        ));
    }
    if !problems.is_empty() {
        return Err(ImportReport { problems });
    }
    let mut services: std::collections::HashSet<&String> = gtfs.calendar.keys().collect();
    services.extend(gtfs.calendar_dates.keys());
    let summary = TimetableSummary {
        agencies: gtfs.agencies.iter().map(|a| a.name.clone()).collect(),
        routes: gtfs
            .routes
            .values()
            .map(|r| {
                let name =
                    r.short_name.clone().filter(|s| !s.is_empty()).or_else(|| r.long_name.clone()).unwrap_or_default();
                (r.id.clone(), name)
            })
            .collect(),
        stops: gtfs.stops.len(),
        trips: gtfs.trips.len(),
        stop_times: gtfs.trips.values().map(|t| t.stop_times.len()).sum(),
        services: services.len(),
    };
    let trip_routes = gtfs.trips.values().map(|t| (t.id.clone(), t.route_id.clone())).collect();
    Ok(Timetable { summary, trip_routes })
}

/// The reader's error with the file and line where it has them.
fn describe(e: &gtfs_structures::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const BULL_RUNNER: &[u8] = include_bytes!("../testdata/bullrunner-gtfs.zip");

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn the_real_bull_runner_feed_imports() {
        let t = import_timetable(BULL_RUNNER).unwrap();
        assert_eq!(t.summary.routes.len(), 6, "{:?}", t.summary.routes);
        assert!(t.summary.agencies.iter().any(|a| a.contains("Bull Runner")), "{:?}", t.summary.agencies);
        assert!(t.summary.trips > 0 && t.summary.stop_times > t.summary.trips && t.summary.stops > 10);
        assert!(t.trip_routes.contains_key("1"));
    }

    #[test]
    fn broken_feeds_are_refused_with_what_is_wrong() {
        let e = import_timetable(b"not a zip").unwrap_err();
        assert!(!e.problems.is_empty());
        let agency = "agency_id,agency_name,agency_url,agency_timezone\nA,Test Transit,https://t.example,UTC\n";
        let routes = "route_id,agency_id,route_short_name,route_long_name,route_type\nR1,A,1,One,3\n";
        let stops = "stop_id,stop_name,stop_lat,stop_lon\nS1,First,0,0\nS2,Second,0,0.01\n";
        let calendar = "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,20260101,20261231\n";
        let trips = "route_id,service_id,trip_id\nR1,WK,T1\n";
        let times = "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,08:00:00,08:00:00,S1,1\nT1,08:10:00,08:10:00,S2,2\n";
        let good = [
            ("agency.txt", agency),
            ("routes.txt", routes),
            ("stops.txt", stops),
            ("calendar.txt", calendar),
            ("trips.txt", trips),
            ("stop_times.txt", times),
        ];
        assert_eq!(import_timetable(&zip_of(&good)).unwrap().summary.trips, 1);
        // A trip on a route that does not exist.
        let bad_ref = "route_id,service_id,trip_id\nNOPE,WK,T1\n";
        let mut files = good;
        files[4] = ("trips.txt", bad_ref);
        let e = import_timetable(&zip_of(&files)).unwrap_err();
        assert!(e.problems.iter().any(|p| p.contains("route NOPE")), "{e}");
        // No trips file at all.
        let e = import_timetable(&zip_of(&good[..4])).unwrap_err();
        assert!(e.problems[0].contains("trips"), "{e}");
        // A one-stop trip and a trip on an undefined service.
        let one_stop = "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,08:00:00,08:00:00,S1,1\n";
        let mut files = good;
        files[5] = ("stop_times.txt", one_stop);
        let e = import_timetable(&zip_of(&files)).unwrap_err();
        assert!(e.problems.iter().any(|p| p.contains("fewer than 2 stop times")), "{e}");
        let mut files = good;
        files[4] = ("trips.txt", "route_id,service_id,trip_id\nR1,SUNDAYS,T1\n");
        let e = import_timetable(&zip_of(&files)).unwrap_err();
        assert!(e.problems.iter().any(|p| p.contains("no calendar defines")), "{e}");
    }
}
