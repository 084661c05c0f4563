//! Importing an operator's static GTFS feed: read with the rust-transit
//! `gtfs-structures` reader (which also checks every cross-reference), then
//! checked for what Kippu relies on. A feed that fails is reported with
//! everything found wrong, and the caller keeps the previous timetable.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// What a successful import contains, in numbers people can check against the agency's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Fare zones named by stops (`stops.txt` zone_id).
    #[serde(default)]
    pub zones: std::collections::BTreeSet<String>,
}

/// An imported timetable: what policies and delay matching need.
#[derive(Debug, Clone)]
pub struct Timetable {
    /// Summary of the feed.
    pub summary: TimetableSummary,
    /// `trip_id → route_id`.
    pub trip_routes: HashMap<String, String>,
    /// `trip_id →` its scheduled stops, to measure delays reported as absolute times.
    pub schedules: HashMap<String, std::sync::Arc<TripSchedule>>,
}

/// One trip's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripSchedule {
    /// `(stop_sequence, stop_id, seconds after the service day's start)`, in order.
    pub stops: Vec<(u32, String, u32)>,
    /// Whether runs come from `frequencies.txt` (times are then relative to the run's start).
    pub frequency_based: bool,
    /// The agency's time zone.
    pub timezone: chrono_tz::Tz,
}

impl TripSchedule {
    /// The worst delay, in seconds, of the absolute stop times `d` reports, against
    /// this schedule on the run's service day; `None` when none of them can be placed.
    pub fn delay_of(&self, d: &crate::TripDelay) -> Option<i32> {
        let first = self.stops.first()?.2;
        let mut worst: Option<i64> = None;
        for o in &d.observed {
            let scheduled = self
                .stops
                .iter()
                .find(|(seq, id, _)| match (o.stop_sequence, &o.stop_id) {
                    (Some(s), _) => *seq == s,
                    (None, Some(stop)) => id == stop,
                    (None, None) => false,
                })
                .map(|s| s.2)?;
            let day = self.service_day_start(d.start_date.as_deref(), o.time)?;
            let offset = if self.frequency_based {
                // A frequency run starts at the descriptor's start_time; the stop times are its template.
                i64::from(parse_hms(d.start_time.as_deref()?)?) + i64::from(scheduled) - i64::from(first)
            } else {
                i64::from(scheduled)
            };
            let delay = o.time - (day + offset);
            worst = Some(worst.map_or(delay, |w| w.max(delay)));
        }
        worst.map(|w| w.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// POSIX time of "noon minus 12 h" (GTFS's service-day origin) on `start_date`
    /// (`YYYYMMDD`), or on the local date of `fallback` when the producer gave none.
    fn service_day_start(&self, start_date: Option<&str>, fallback: i64) -> Option<i64> {
        use chrono::{NaiveDate, TimeZone};
        let date = match start_date {
            Some(s) => NaiveDate::parse_from_str(s, "%Y%m%d").ok()?,
            None => chrono::DateTime::from_timestamp(fallback, 0)?.with_timezone(&self.timezone).date_naive(),
        };
        let noon = self.timezone.from_local_datetime(&date.and_hms_opt(12, 0, 0)?).earliest()?;
        Some(noon.timestamp() - 12 * 3600)
    }
}

fn parse_hms(s: &str) -> Option<u32> {
    let mut parts = s.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    (m < 60 && sec < 60).then_some(h * 3600 + m * 60 + sec)
}

/// Why a feed was refused: every problem found, each naming the file or object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("GTFS feed refused: {}", problems.join("; "))]
pub struct ImportReport {
    /// What is wrong.
    pub problems: Vec<String>,
}

/// How much a GTFS zip may hold, checked before the feed is parsed.
///
/// A zip is a promise about sizes that its headers may not keep: a few kilobytes of
/// deflate can inflate to gigabytes (a "zip bomb"), the headers' sizes can lie, and a
/// central directory can list millions of entries. So the archive is first read entry by
/// entry through a capped reader that counts the bytes actually inflated, and refused at
/// the first limit crossed, naming the entry; only then does the GTFS reader see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// The zip itself, compressed.
    pub max_zip_bytes: usize,
    /// One entry, inflated.
    pub max_entry_bytes: u64,
    /// All entries together, inflated.
    pub max_total_bytes: u64,
    /// Entries in the archive.
    pub max_entries: usize,
}

impl ImportLimits {
    /// Generous enough for a large real agency, tight enough that an upload cannot exhaust
    /// the server:
    /// - 64 MiB compressed: a big city's or a regional agency's feed is tens of MB zipped
    ///   (the GTFS CSVs compress about 8 to 12 times);
    /// - 1 GiB per entry: `stop_times.txt` is by far the largest file and runs to hundreds
    ///   of MB uncompressed for such an agency (64 MiB at 12:1 is under 800 MB);
    /// - 1.5 GiB in all: `shapes.txt` and the rest come on top of `stop_times.txt`; the
    ///   parsed feed takes memory in proportion, so this also bounds the import's memory;
    /// - 1,000 entries: GTFS defines about 30 files, and real zips add a few more (licences,
    ///   readmes, folders); many more is not a timetable.
    pub const DEFAULT: Self = Self {
        max_zip_bytes: 64 * 1024 * 1024,
        max_entry_bytes: 1024 * 1024 * 1024,
        max_total_bytes: 1536 * 1024 * 1024,
        max_entries: 1_000,
    };
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Reads and checks a GTFS zip, within [`ImportLimits::DEFAULT`].
pub fn import_timetable(zip: &[u8]) -> Result<Timetable, ImportReport> {
    import_timetable_with(zip, &ImportLimits::DEFAULT)
}

/// Reads and checks a GTFS zip, within `limits`.
pub fn import_timetable_with(zip: &[u8], limits: &ImportLimits) -> Result<Timetable, ImportReport> {
    let refuse = |p: String| ImportReport { problems: vec![p] };
    check_archive(zip, limits, &mut 0).map_err(refuse)?;
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
        zones: gtfs.stops.values().filter_map(|s| s.zone_id.clone()).filter(|z| !z.is_empty()).collect(),
    };
    let trip_routes = gtfs.trips.values().map(|t| (t.id.clone(), t.route_id.clone())).collect();
    let timezone: chrono_tz::Tz = match gtfs.agencies[0].timezone.parse() {
        Ok(tz) => tz,
        Err(_) => {
            return Err(ImportReport {
                problems: vec![format!("agency.txt: unknown time zone {:?}", gtfs.agencies[0].timezone)],
            })
        }
    };
    let schedules = gtfs
        .trips
        .values()
        .map(|t| {
            let mut stops: Vec<(u32, String, u32)> = t
                .stop_times
                .iter()
                .filter_map(|st| {
                    st.arrival_time.or(st.departure_time).map(|a| (st.stop_sequence, st.stop.id.clone(), a))
                })
                .collect();
            stops.sort_by_key(|s| s.0);
            let schedule = TripSchedule { stops, frequency_based: !t.frequencies.is_empty(), timezone };
            (t.id.clone(), std::sync::Arc::new(schedule))
        })
        .collect();
    Ok(Timetable { summary, trip_routes, schedules })
}

/// Refuses `zip` if it crosses one of `limits`, inflating no entry further than the limit
/// (one byte more, to know it is over): every byte the decompressor produced is added to
/// `inflated`. The sizes the zip's headers declare are not trusted: a larger one than
/// allowed is refused at once, a smaller one is checked by counting. This inflates the
/// feed once more than the GTFS reader does, a second or so of CPU for a large feed,
/// which is what it costs to never parse what has not been measured.
fn check_archive(zip: &[u8], limits: &ImportLimits, inflated: &mut u64) -> Result<(), String> {
    use std::io::Read as _;
    if zip.len() > limits.max_zip_bytes {
        return Err(format!(
            "the zip is {} bytes; at most {} bytes (compressed) are accepted",
            zip.len(),
            limits.max_zip_bytes
        ));
    }
    // The zip reader holds every central-directory entry in memory before anything can be
    // counted, and each entry starts with this signature: more signatures than entries
    // allowed and the archive is refused before it is opened.
    let headers = zip.windows(4).filter(|w| *w == b"PK\x01\x02").count();
    if headers > limits.max_entries {
        return Err(format!("the zip has more than {} entries (the limit)", limits.max_entries));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("not a readable zip: {e}"))?;
    if archive.len() > limits.max_entries {
        return Err(format!("the zip has {} entries; at most {} are accepted", archive.len(), limits.max_entries));
    }
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = entry.name().to_owned();
        if entry.size() > limits.max_entry_bytes {
            return Err(format!(
                "{name} declares {} bytes uncompressed; at most {} bytes per file are accepted",
                entry.size(),
                limits.max_entry_bytes
            ));
        }
        let room = limits.max_entry_bytes.min(limits.max_total_bytes - total);
        let read = std::io::copy(&mut (&mut entry).take(room + 1), &mut std::io::sink());
        let n = read.map_err(|e| format!("{name}: cannot be inflated ({e})"))?;
        *inflated += n;
        if n > limits.max_entry_bytes {
            return Err(format!("{name} inflates to more than {} bytes, the limit per file", limits.max_entry_bytes));
        }
        total += n;
        if total > limits.max_total_bytes {
            return Err(format!(
                "the files inflate to more than {} bytes in all, the limit (crossed at {name})",
                limits.max_total_bytes
            ));
        }
    }
    Ok(())
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

    fn observed(trip: &str, date: Option<&str>, start: Option<&str>, stops: &[(u32, i64)]) -> crate::TripDelay {
        crate::TripDelay {
            entity_id: "e".into(),
            trip_id: trip.into(),
            route_id: None,
            start_date: date.map(str::to_owned),
            delay_secs: 0,
            feed_timestamp: 0,
            measured_at: None,
            start_time: start.map(str::to_owned),
            observed: stops
                .iter()
                .map(|(seq, time)| crate::ObservedStop { stop_sequence: Some(*seq), stop_id: None, time: *time })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn delays_reported_as_absolute_times_are_measured_against_the_schedule() {
        let t = import_timetable(&zip_of(&test_feed())).unwrap();
        let s = &t.schedules["T1"];
        // 2026-03-02 is a Monday; the feed runs in UTC. T1 is due at stop 2 at 08:10.
        let due = 1_772_439_000; // 2026-03-02T08:10:00Z
        assert_eq!(s.delay_of(&observed("T1", Some("20260302"), None, &[(2, due + 22 * 60)])), Some(22 * 60));
        assert_eq!(s.delay_of(&observed("T1", None, None, &[(1, due - 600 + 30), (2, due + 300)])), Some(300));
        assert_eq!(s.delay_of(&observed("T1", Some("20260302"), None, &[(9, due)])), None, "unknown stop");
        // Bull Runner trips run by frequency: the run's start_time places the template in the day (America/New_York).
        let br = import_timetable(BULL_RUNNER).unwrap();
        let s1 = &br.schedules["1"];
        assert!(s1.frequency_based && s1.stops.len() >= 2);
        let (seq, _, at) = s1.stops[1].clone();
        let first = s1.stops[0].2;
        // 2015-01-05 07:30 New York = 12:30 UTC.
        let run_start = 1_420_461_000;
        let due = run_start + i64::from(at - first);
        let late = observed("1", Some("20150105"), Some("07:30:00"), &[(seq, due + 17 * 60)]);
        assert_eq!(s1.delay_of(&late), Some(17 * 60));
        assert_eq!(s1.delay_of(&observed("1", Some("20150105"), None, &[(seq, due)])), None, "no start_time");
    }

    fn test_feed() -> [(&'static str, &'static str); 6] {
        [
            ("agency.txt", "agency_id,agency_name,agency_url,agency_timezone\nA,Test Transit,https://t.example,UTC\n"),
            ("routes.txt", "route_id,agency_id,route_short_name,route_long_name,route_type\nR1,A,1,One,3\n"),
            ("stops.txt", "stop_id,stop_name,stop_lat,stop_lon\nS1,First,0,0\nS2,Second,0,0.01\n"),
            ("calendar.txt", "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,20260101,20261231\n"),
            ("trips.txt", "route_id,service_id,trip_id\nR1,WK,T1\n"),
            ("stop_times.txt", "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,08:00:00,08:00:00,S1,1\nT1,08:10:00,08:10:00,S2,2\n"),
        ]
    }

    /// A zip of `files`, each `(name, body)`, deflated.
    fn deflated(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    const SMALL: ImportLimits =
        ImportLimits { max_zip_bytes: 1 << 20, max_entry_bytes: 1 << 20, max_total_bytes: 3 << 19, max_entries: 50 };

    /// The refusal and how many bytes were inflated to reach it.
    fn refused(zip: &[u8], limits: &ImportLimits) -> (String, u64) {
        let mut inflated = 0;
        let e = check_archive(zip, limits, &mut inflated).unwrap_err();
        (e, inflated)
    }

    #[test]
    fn a_zip_bomb_entry_is_refused_without_inflating_past_the_limit() {
        let mut bomb = deflated(&[("agency.txt", b"x"), ("stop_times.txt", &vec![b'0'; 8 << 20])]);
        assert!(bomb.len() < 64 * 1024, "8 MiB of zeros deflate to {} bytes", bomb.len());
        // Declared honestly, it is refused on its word, before anything is inflated past agency.txt.
        let (e, inflated) = refused(&bomb, &SMALL);
        assert_eq!(
            e,
            "stop_times.txt declares 8388608 bytes uncompressed; at most 1048576 bytes per file are accepted"
        );
        assert_eq!(inflated, 1);
        // The report names the limit and the entry; the feed is not parsed.
        let report = import_timetable_with(&bomb, &SMALL).unwrap_err();
        assert_eq!(report.problems, [e]);
        // Declared as 0 bytes in both headers, it is inflated only to one byte past the limit.
        for (i, _) in bomb.clone().windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02") {
            bomb[i + 24..i + 28].copy_from_slice(&0u32.to_le_bytes());
        }
        let (e, inflated) = refused(&bomb, &SMALL);
        assert_eq!(e, "stop_times.txt inflates to more than 1048576 bytes, the limit per file");
        assert_eq!(inflated, 1 + (1 << 20) + 1, "agency.txt, then the limit and one byte");
    }

    #[test]
    fn entries_under_the_limit_each_but_over_it_together_are_refused() {
        let part = vec![b'1'; 600 * 1024];
        let zip = deflated(&[("a.txt", &part), ("b.txt", &part), ("c.txt", &part)]);
        let (e, inflated) = refused(&zip, &SMALL);
        assert_eq!(e, "the files inflate to more than 1572864 bytes in all, the limit (crossed at c.txt)");
        assert!(inflated <= (3 << 19) + 1, "inflated {inflated} bytes");
    }

    #[test]
    fn declared_sizes_are_not_believed() {
        let mut zip = deflated(&[("stop_times.txt", &vec![b'0'; 4 << 20])]);
        // Rewrite the uncompressed size in the local header and the central directory: 100 bytes.
        assert_eq!(&zip[..4], b"PK\x03\x04");
        zip[22..26].copy_from_slice(&100u32.to_le_bytes());
        let cd = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        zip[cd + 24..cd + 28].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(zip::ZipArchive::new(Cursor::new(&zip)).unwrap().by_index(0).unwrap().size(), 100);
        let (e, inflated) = refused(&zip, &SMALL);
        assert_eq!(e, "stop_times.txt inflates to more than 1048576 bytes, the limit per file");
        assert!(inflated <= (1 << 20) + 1, "inflated {inflated} bytes");
        // A declared size over the limit is refused before inflating anything.
        zip[cd + 24..cd + 28].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let (e, inflated) = refused(&zip, &SMALL);
        assert!(e.starts_with("stop_times.txt declares 4294967280 bytes uncompressed"), "{e}");
        assert_eq!(inflated, 0);
    }

    #[test]
    fn too_many_entries_or_too_large_a_zip_is_refused_before_opening() {
        let names: Vec<String> = (0..1_001).map(|i| format!("f{i}.txt")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let zip = deflated(&files);
        let e = import_timetable(&zip).unwrap_err();
        assert_eq!(e.problems, ["the zip has more than 1000 entries (the limit)"]);
        let big = vec![0u8; (1 << 20) + 1];
        assert_eq!(
            refused(&big, &SMALL).0,
            "the zip is 1048577 bytes; at most 1048576 bytes (compressed) are accepted"
        );
        // The defaults take the real feed.
        assert!(check_archive(BULL_RUNNER, &ImportLimits::default(), &mut 0).is_ok());
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
