//! The payout decision, kept free of I/O so chain code and services agree on it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::TripDelay;

/// Whether `delay` is late enough to trigger a policy with the given
/// threshold, i.e. `delay_secs >= threshold_minutes * 60`.
///
/// Compares in seconds rather than via [`delay_minutes`] so a delay of
/// 4 min 59 s never rounds its way past a 5-minute threshold, and 5 min 0 s
/// always meets it. A threshold of 0 is met by any non-negative delay.
pub fn affected(delay: &TripDelay, threshold_minutes: u32) -> bool {
    i64::from(delay.delay_secs) >= i64::from(threshold_minutes) * 60
}

/// Whole minutes of delay, rounded down; early running (negative delay)
/// counts as 0 because nobody is compensated for an early vehicle.
pub fn delay_minutes(delay_secs: i32) -> u32 {
    // max(0) first makes the cast lossless.
    (delay_secs.max(0) / 60) as u32
}

/// Why an insured traveler is owed compensation for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affected {
    /// They tapped onto the run (an on-board validator reported it), and it ran late or was cancelled.
    Tapped,
    /// They tapped in at a stop gate the run was due to serve, and it was cancelled or
    /// skipped that stop, and no vehicle carried them since.
    NotCarried,
}

impl Affected {
    /// Stable name, as stored with the claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Affected::Tapped => "tapped",
            Affected::NotCarried => "not_carried",
        }
    }
}

/// A tap of one traveler, as the insurer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiderTap {
    /// Ticket presented.
    pub ticket_id: u64,
    /// POSIX seconds.
    pub at: i64,
    /// The run an on-board validator was working, if the tap was on a vehicle.
    pub trip_id: Option<String>,
    /// That run's service day (`YYYYMMDD`), if the vehicle knew it.
    pub trip_date: Option<String>,
    /// The GTFS stop of a station (stop) gate, if the tap was at a stop.
    pub stop_id: Option<String>,
}

/// How far back a tap can make a traveler affected.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// A tap onto a run counts for this long (a run lasts at most this).
    pub ride_secs: i64,
    /// A tap at a stop counts as waiting for a run this long.
    pub boarding_secs: i64,
}

impl Default for Windows {
    fn default() -> Self {
        Self { ride_secs: 6 * 3600, boarding_secs: 45 * 60 }
    }
}

/// Decides whether a traveler with `taps` (theirs, any order) is affected by `run` as
/// reported at `now`, under a policy with `threshold_minutes`. `run_stops` are the stops
/// the run is scheduled to serve (from the timetable; empty when unknown, in which case
/// only a tap onto the run can make anyone affected). Returns the tap that makes them
/// affected. Pure, so the rule is tested apart from the chain and the database.
pub fn affected_by<'t>(
    run: &TripDelay,
    run_stops: &[&str],
    taps: &'t [RiderTap],
    now: i64,
    threshold_minutes: u32,
    windows: Windows,
) -> Option<(Affected, &'t RiderTap)> {
    let late = run.cancelled || affected(run, threshold_minutes);
    let on_run = |t: &RiderTap| {
        t.trip_id.as_deref() == Some(run.trip_id.as_str())
            && match (&t.trip_date, &run.start_date) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    };
    if late {
        if let Some(t) = taps.iter().find(|t| on_run(t) && t.at <= now && now - t.at <= windows.ride_secs) {
            return Some((Affected::Tapped, t));
        }
    }
    if !run.cancelled && run.skipped_stops.is_empty() {
        return None;
    }
    taps.iter()
        .filter(|t| t.at <= now && now - t.at <= windows.boarding_secs)
        .find(|t| {
            let Some(stop) = t.stop_id.as_deref() else { return false };
            // A cancelled run strands every stop it was due at; producers often list them as skipped too.
            let stranded = run.skipped_stops.iter().any(|s| s == stop) || (run.cancelled && run_stops.contains(&stop));
            // Any vehicle tap after waiting there means they were carried, by this run or another.
            stranded && !taps.iter().any(|v| v.trip_id.is_some() && v.at > t.at)
        })
        .map(|t| (Affected::NotCarried, t))
}

/// Recent taps indexed by plan, by run and by stop, so each late run looks only at the
/// plans whose travelers rode it or waited at one of its stops. `T` is what the caller
/// needs besides the tap (e.g. the ticket's operator and product).
#[derive(Debug, Default)]
pub struct RiderIndex<T> {
    taps: Vec<(RiderTap, T)>,
    by_plan: HashMap<u64, Vec<usize>>,
    by_trip: HashMap<String, Vec<u64>>,
    by_stop: HashMap<String, Vec<u64>>,
}

impl<T> RiderIndex<T> {
    /// Indexes `(plan, tap, extra)` triples.
    pub fn new(taps: impl IntoIterator<Item = (u64, RiderTap, T)>) -> Self {
        let mut r =
            Self { taps: Vec::new(), by_plan: HashMap::new(), by_trip: HashMap::new(), by_stop: HashMap::new() };
        for (plan, tap, extra) in taps {
            let i = r.taps.len();
            r.by_plan.entry(plan).or_default().push(i);
            if let Some(trip) = &tap.trip_id {
                r.by_trip.entry(trip.clone()).or_default().push(plan);
            }
            if let Some(stop) = &tap.stop_id {
                r.by_stop.entry(stop.clone()).or_default().push(plan);
            }
            r.taps.push((tap, extra));
        }
        r
    }

    /// Plans with a tap onto `run` or at one of `stops` (or a stop it skips), each once.
    pub fn plans_near(&self, run: &TripDelay, stops: &[&str]) -> Vec<u64> {
        let mut plans: Vec<u64> = self.by_trip.get(&run.trip_id).cloned().unwrap_or_default();
        if run.cancelled || !run.skipped_stops.is_empty() {
            for s in stops.iter().copied().chain(run.skipped_stops.iter().map(String::as_str)) {
                plans.extend(self.by_stop.get(s).into_iter().flatten());
            }
        }
        plans.sort_unstable();
        plans.dedup();
        plans
    }

    /// The extra of some tap onto run `trip_id` (an on-board validator declared it), if any.
    pub fn declared_by(&self, trip_id: &str) -> Option<&T> {
        let plan = *self.by_trip.get(trip_id)?.first()?;
        self.of_plan(plan).find(|(t, _)| t.trip_id.as_deref() == Some(trip_id)).map(|(_, extra)| extra)
    }

    /// A plan's taps with their extras, oldest first as given.
    pub fn of_plan(&self, plan: u64) -> impl Iterator<Item = &(RiderTap, T)> {
        self.by_plan.get(&plan).into_iter().flatten().map(|&i| &self.taps[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(secs: i32) -> TripDelay {
        TripDelay {
            entity_id: "e".into(),
            trip_id: "1".into(),
            route_id: None,
            start_date: None,
            delay_secs: secs,
            feed_timestamp: 0,
            measured_at: None,
            start_time: None,
            observed: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn minutes_floor_and_clamp() {
        assert_eq!(delay_minutes(0), 0);
        assert_eq!(delay_minutes(59), 0);
        assert_eq!(delay_minutes(60), 1);
        assert_eq!(delay_minutes(299), 4);
        assert_eq!(delay_minutes(-1), 0);
        assert_eq!(delay_minutes(i32::MIN), 0);
        assert_eq!(delay_minutes(i32::MAX), (i32::MAX / 60) as u32);
    }

    #[test]
    fn threshold_is_inclusive_in_seconds() {
        assert!(!affected(&delay(299), 5));
        assert!(affected(&delay(300), 5));
        assert!(affected(&delay(301), 5));
        assert!(!affected(&delay(-600), 0));
        assert!(affected(&delay(0), 0));
        // No overflow for huge thresholds.
        assert!(!affected(&delay(i32::MAX), u32::MAX));
    }

    fn run(trip: &str, secs: i32) -> TripDelay {
        TripDelay { trip_id: trip.into(), start_date: Some("20261124".into()), delay_secs: secs, ..delay(0) }
    }

    fn on_board(trip: &str, at: i64) -> RiderTap {
        RiderTap { ticket_id: 7, at, trip_id: Some(trip.into()), trip_date: Some("20261124".into()), stop_id: None }
    }

    fn at_stop(stop: &str, at: i64) -> RiderTap {
        RiderTap { ticket_id: 7, at, stop_id: Some(stop.into()), ..Default::default() }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_rider_of_a_late_run_is_affected_over_the_threshold_only() {
        let w = Windows::default();
        let taps = [on_board("8", NOW - 600)];
        assert_eq!(affected_by(&run("8", 20 * 60), &[], &taps, NOW, 15, w).map(|a| a.0), Some(Affected::Tapped));
        assert_eq!(affected_by(&run("8", 14 * 60 + 59), &[], &taps, NOW, 15, w), None, "under the threshold");
        assert_eq!(affected_by(&run("9", 20 * 60), &[], &taps, NOW, 15, w), None, "another run");
        let other_day = TripDelay { start_date: Some("20261123".into()), ..run("8", 20 * 60) };
        assert_eq!(affected_by(&other_day, &[], &taps, NOW, 15, w), None, "the same trip on another day");
        let long_ago = [on_board("8", NOW - 7 * 3600)];
        assert_eq!(affected_by(&run("8", 20 * 60), &[], &long_ago, NOW, 15, w), None, "a ride hours ago");
        let later = [on_board("8", NOW + 60)];
        assert_eq!(affected_by(&run("8", 20 * 60), &[], &later, NOW, 15, w), None, "a tap after the report");
    }

    #[test]
    fn holding_a_ticket_without_a_tap_is_not_enough_for_a_late_run() {
        let w = Windows::default();
        // Waited at a stop of the run, which ran late but did come: carried, late, yet they never tapped on.
        let taps = [at_stop("S1", NOW - 600)];
        assert_eq!(affected_by(&run("8", 30 * 60), &["S1", "S2"], &taps, NOW, 15, w), None);
    }

    #[test]
    fn waiting_at_a_stop_of_a_cancelled_or_skipping_run_is_not_being_carried() {
        let w = Windows::default();
        let cancelled = TripDelay { cancelled: true, ..run("8", 0) };
        let waited = [at_stop("S1", NOW - 600)];
        let got = affected_by(&cancelled, &["S1", "S2"], &waited, NOW, 15, w);
        assert_eq!(got.map(|a| a.0), Some(Affected::NotCarried));
        assert_eq!(affected_by(&cancelled, &["S2"], &waited, NOW, 15, w), None, "a stop the run does not serve");
        assert_eq!(affected_by(&cancelled, &[], &waited, NOW, 15, w), None, "no timetable, no proof");
        let carried = [at_stop("S1", NOW - 600), on_board("9", NOW - 300)];
        assert_eq!(affected_by(&cancelled, &["S1"], &carried, NOW, 15, w), None, "another bus took them");
        let too_early = [at_stop("S1", NOW - 2 * 3600)];
        assert_eq!(affected_by(&cancelled, &["S1"], &too_early, NOW, 15, w), None);
        let skipping = TripDelay { skipped_stops: vec!["S1".into()], ..run("8", 0) };
        assert_eq!(affected_by(&skipping, &[], &waited, NOW, 15, w).map(|a| a.0), Some(Affected::NotCarried));
        assert_eq!(affected_by(&skipping, &[], &[at_stop("S2", NOW - 60)], NOW, 15, w), None);
        // On board a run that is then cancelled: affected whatever the threshold.
        let rode = [on_board("8", NOW - 300)];
        assert_eq!(affected_by(&cancelled, &[], &rode, NOW, 60, w).map(|a| a.0), Some(Affected::Tapped));
    }
}
