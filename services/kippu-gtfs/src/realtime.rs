//! GTFS-Realtime TripUpdates and Alerts reduced to what a delay policy needs.

use prost::Message;
use serde::{Deserialize, Serialize};
use tiny_keccak::{Hasher, Keccak};

use crate::proto::{
    alert,
    feed_header::Incrementality,
    translated_string::Translation,
    trip_descriptor,
    trip_update::stop_time_update,
    trip_update::{StopTimeEvent, StopTimeUpdate},
    Alert, EntitySelector, FeedEntity, FeedHeader, FeedMessage, TimeRange, TranslatedString, TripDescriptor,
    TripUpdate,
};
use crate::{GtfsError, Result};

/// The delay of one trip run as reported by one GTFS-Realtime feed message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripDelay {
    /// `FeedEntity.id`; only unique within one feed message.
    pub entity_id: String,
    /// GTFS `trips.txt` trip_id.
    pub trip_id: String,
    /// GTFS route_id, when the producer sent it.
    pub route_id: Option<String>,
    /// Service day of the run, `YYYYMMDD`, when the producer sent it.
    pub start_date: Option<String>,
    /// Worst delay in seconds (negative = early): the maximum of the
    /// trip-level delay and every stop's arrival/departure delay. 0 when the
    /// update carries no delay at all (e.g. absolute times only).
    pub delay_secs: i32,
    /// `FeedHeader.timestamp` (POSIX seconds), 0 when absent.
    pub feed_timestamp: u64,
    /// `TripUpdate.timestamp`: when the producer last measured this trip, if it says.
    pub measured_at: Option<u64>,
    /// `TripDescriptor.start_time` (`HH:MM:SS`), which places a frequency-based run in its day.
    pub start_time: Option<String>,
    /// Stop events given as absolute times (no delay): matched against the timetable by
    /// [`crate::TripSchedule::delay_of`], since such producers state when, not how late.
    pub observed: Vec<ObservedStop>,
    /// The run will not operate (`CANCELED`, or `DELETED` in newer producers): nobody is carried.
    pub cancelled: bool,
    /// Stops the run will pass without serving (`SKIPPED`): travelers waiting there are not carried.
    pub skipped_stops: Vec<String>,
}

/// An arrival (or departure) a producer reported as an absolute time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedStop {
    /// `stop_sequence`, when given.
    pub stop_sequence: Option<u32>,
    /// `stop_id`, when given.
    pub stop_id: Option<String>,
    /// POSIX seconds.
    pub time: i64,
}

impl TripDelay {
    /// Keccak-256 of `"{trip_id}|{start_date}"` (empty date when unknown).
    ///
    /// Identifies one run of one trip across successive feed messages, which
    /// restate the same delay every few seconds; the chain keys payouts by it
    /// so a policy pays at most once per late run. Keccak rather than SHA-3 so
    /// that Solidity's `keccak256(bytes(...))` yields the same value.
    pub fn delay_id(&self) -> [u8; 32] {
        let mut hasher = Keccak::v256();
        hasher.update(self.trip_id.as_bytes());
        hasher.update(b"|");
        hasher.update(self.start_date.as_deref().unwrap_or("").as_bytes());
        let mut out = [0u8; 32];
        hasher.finalize(&mut out);
        out
    }
}

/// A decoded message: its header timestamp, its trip updates and its alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedContent {
    /// `FeedHeader.timestamp` (POSIX seconds), 0 when absent.
    pub timestamp: u64,
    /// One per TripUpdate entity with a trip_id, in feed order.
    pub delays: Vec<TripDelay>,
    /// One per Alert entity, in feed order.
    pub alerts: Vec<ServiceAlert>,
}

/// A service alert, reduced to what travelers and the insurer's dashboard show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAlert {
    /// `FeedEntity.id`.
    pub id: String,
    /// `Alert.cause` as its GTFS-Realtime name (`STRIKE`, `WEATHER`, …).
    pub cause: String,
    /// `Alert.effect` as its GTFS-Realtime name (`NO_SERVICE`, `SIGNIFICANT_DELAYS`, …).
    pub effect: String,
    /// Header text (the English or untagged translation, else the first).
    pub header: String,
    /// Description text, same choice of translation.
    pub description: String,
    /// Active periods `(start, end)` in POSIX seconds; empty = while it is in the feed.
    pub active: Vec<(Option<u64>, Option<u64>)>,
    /// Routes it names.
    pub routes: Vec<String>,
    /// Trips it names.
    pub trips: Vec<String>,
    /// Stops it names.
    pub stops: Vec<String>,
}

impl ServiceAlert {
    /// Whether the alert applies at `now`: no periods given, or `now` inside one.
    pub fn active_at(&self, now: u64) -> bool {
        self.active.is_empty()
            || self.active.iter().any(|(from, to)| from.is_none_or(|f| f <= now) && to.is_none_or(|t| now < t))
    }
}

/// Decodes a protobuf GTFS-Realtime `FeedMessage` and returns one
/// [`TripDelay`] per TripUpdate entity, in feed order. See [`decode_message`].
///
/// # Errors
///
/// As [`decode_message`].
pub fn decode_feed(bytes: &[u8]) -> Result<Vec<TripDelay>> {
    Ok(decode_message(bytes)?.delays)
}

/// Decodes a protobuf GTFS-Realtime `FeedMessage`, once, into its trip updates and alerts.
///
/// Skipped rather than rejected, because one odd entity should not hide the
/// rest of a feed: entities marked `is_deleted` (they retract, not report),
/// vehicle positions, and TripUpdates without a trip_id (route-wide selectors
/// cannot be matched to a ticket).
///
/// # Errors
///
/// [`GtfsError::Decode`] for bytes that are not valid protobuf (including
/// truncated messages) and [`GtfsError::MissingHeader`] for a message without
/// `gtfs_realtime_version`, such as an empty buffer.
pub fn decode_message(bytes: &[u8]) -> Result<FeedContent> {
    let feed = FeedMessage::decode(bytes)?;
    // prost does not enforce proto2 `required`, so check the one field that
    // distinguishes a real feed from an empty or foreign buffer.
    if feed.header.gtfs_realtime_version.is_empty() {
        return Err(GtfsError::MissingHeader);
    }
    let feed_timestamp = feed.header.timestamp.unwrap_or(0);
    let mut out = FeedContent { timestamp: feed_timestamp, ..Default::default() };
    for e in feed.entity.into_iter().filter(|e| !e.is_deleted.unwrap_or(false)) {
        if let Some(a) = e.alert {
            out.alerts.push(service_alert(e.id.clone(), a));
        }
        let Some(tu) = e.trip_update else { continue };
        let Some(trip_id) = non_empty(tu.trip.trip_id.clone()) else { continue };
        let stop_delays = tu
            .stop_time_update
            .iter()
            .flat_map(|stu| [stu.arrival, stu.departure].into_iter().flatten().filter_map(|ev| ev.delay));
        let delay_secs = tu.delay.into_iter().chain(stop_delays).max().unwrap_or(0);
        let observed = tu
            .stop_time_update
            .iter()
            .flat_map(|stu| {
                [stu.arrival, stu.departure].into_iter().flatten().filter(|ev| ev.delay.is_none()).filter_map(|ev| {
                    ev.time.map(|time| ObservedStop {
                        stop_sequence: stu.stop_sequence,
                        stop_id: non_empty(stu.stop_id.clone()),
                        time,
                    })
                })
            })
            .collect();
        let skipped_stops = tu
            .stop_time_update
            .iter()
            .filter(|stu| stu.schedule_relationship == Some(stop_time_update::ScheduleRelationship::Skipped as i32))
            .filter_map(|stu| non_empty(stu.stop_id.clone()))
            .collect();
        // DELETED (7) is newer than the bundled schema's enum; same meaning for a traveler.
        let cancelled = matches!(tu.trip.schedule_relationship, Some(r) if r == trip_descriptor::ScheduleRelationship::Canceled as i32 || r == 7);
        out.delays.push(TripDelay {
            entity_id: e.id,
            trip_id,
            route_id: non_empty(tu.trip.route_id),
            start_date: non_empty(tu.trip.start_date),
            delay_secs,
            feed_timestamp,
            measured_at: tu.timestamp,
            start_time: non_empty(tu.trip.start_time),
            observed,
            cancelled,
            skipped_stops,
        });
    }
    Ok(out)
}

fn service_alert(id: String, a: Alert) -> ServiceAlert {
    let text = |t: Option<TranslatedString>| {
        let t = t.unwrap_or_default().translation;
        t.iter()
            .find(|tr| tr.language.as_deref().is_none_or(|l| l.is_empty() || l.starts_with("en")))
            .or(t.first())
            .map(|tr| tr.text.clone())
            .unwrap_or_default()
    };
    let cause = alert::Cause::try_from(a.cause.unwrap_or(1)).map_or("UNKNOWN_CAUSE", |c| c.as_str_name());
    let effect = alert::Effect::try_from(a.effect.unwrap_or(8)).map_or("UNKNOWN_EFFECT", |e| e.as_str_name());
    let mut routes = Vec::new();
    let mut trips = Vec::new();
    let mut stops = Vec::new();
    for sel in &a.informed_entity {
        routes.extend(non_empty(sel.route_id.clone()));
        trips.extend(sel.trip.as_ref().and_then(|t| non_empty(t.trip_id.clone())));
        stops.extend(non_empty(sel.stop_id.clone()));
    }
    ServiceAlert {
        id,
        cause: cause.into(),
        effect: effect.into(),
        header: text(a.header_text),
        description: text(a.description_text),
        active: a.active_period.iter().map(|p| (p.start, p.end)).collect(),
        routes,
        trips,
        stops,
    }
}

/// What [`encode_feed`] writes: delays, cancelled runs and alerts.
#[derive(Debug, Clone, Default)]
pub struct FeedSpec {
    /// `(trip_id, route_id, delay_secs)`.
    pub delays: Vec<(String, Option<String>, i32)>,
    /// Trip ids of runs cancelled (`CANCELED`).
    pub cancelled: Vec<String>,
    /// `(trip_id, stop_id)` stops a run skips.
    pub skipped: Vec<(String, String)>,
    /// Alerts.
    pub alerts: Vec<ServiceAlert>,
}

/// Encodes a full-dataset GTFS-Realtime message from a [`FeedSpec`]; for dev
/// tools and tests that need to inject delays, cancellations and alerts.
pub fn encode_feed(feed_timestamp: u64, spec: &FeedSpec) -> Vec<u8> {
    let mut entity: Vec<FeedEntity> = spec
        .delays
        .iter()
        .enumerate()
        .map(|(i, (trip_id, route_id, delay))| FeedEntity {
            id: format!("tu-{i}-{trip_id}"),
            trip_update: Some(TripUpdate {
                trip: TripDescriptor {
                    trip_id: Some(trip_id.clone()),
                    route_id: route_id.clone(),
                    ..Default::default()
                },
                stop_time_update: vec![StopTimeUpdate {
                    stop_sequence: Some(1),
                    arrival: Some(StopTimeEvent { delay: Some(*delay), ..Default::default() }),
                    ..Default::default()
                }],
                timestamp: Some(feed_timestamp),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    entity.extend(spec.cancelled.iter().map(|trip_id| FeedEntity {
        id: format!("cancel-{trip_id}"),
        trip_update: Some(TripUpdate {
            trip: TripDescriptor {
                trip_id: Some(trip_id.clone()),
                schedule_relationship: Some(trip_descriptor::ScheduleRelationship::Canceled as i32),
                ..Default::default()
            },
            timestamp: Some(feed_timestamp),
            ..Default::default()
        }),
        ..Default::default()
    }));
    entity.extend(spec.skipped.iter().map(|(trip_id, stop_id)| FeedEntity {
        id: format!("skip-{trip_id}-{stop_id}"),
        trip_update: Some(TripUpdate {
            trip: TripDescriptor { trip_id: Some(trip_id.clone()), ..Default::default() },
            stop_time_update: vec![StopTimeUpdate {
                stop_id: Some(stop_id.clone()),
                schedule_relationship: Some(stop_time_update::ScheduleRelationship::Skipped as i32),
                ..Default::default()
            }],
            timestamp: Some(feed_timestamp),
            ..Default::default()
        }),
        ..Default::default()
    }));
    entity.extend(spec.alerts.iter().map(|a| {
        let text = |s: &str| {
            Some(TranslatedString { translation: vec![Translation { text: s.into(), language: Some("en".into()) }] })
        };
        let selectors = a
            .routes
            .iter()
            .map(|r| EntitySelector { route_id: Some(r.clone()), ..Default::default() })
            .chain(a.trips.iter().map(|t| EntitySelector {
                trip: Some(TripDescriptor { trip_id: Some(t.clone()), ..Default::default() }),
                ..Default::default()
            }))
            .chain(a.stops.iter().map(|s| EntitySelector { stop_id: Some(s.clone()), ..Default::default() }))
            .collect();
        FeedEntity {
            id: a.id.clone(),
            alert: Some(Alert {
                active_period: a.active.iter().map(|(start, end)| TimeRange { start: *start, end: *end }).collect(),
                informed_entity: selectors,
                cause: alert::Cause::from_str_name(&a.cause).map(|c| c as i32),
                effect: alert::Effect::from_str_name(&a.effect).map(|e| e as i32),
                header_text: text(&a.header),
                description_text: text(&a.description),
                ..Default::default()
            }),
            ..Default::default()
        }
    }));
    FeedMessage {
        header: FeedHeader {
            gtfs_realtime_version: "2.0".into(),
            incrementality: Some(Incrementality::FullDataset as i32),
            timestamp: Some(feed_timestamp),
            ..Default::default()
        },
        entity,
    }
    .encode_to_vec()
}

/// Encodes a full-dataset GTFS-Realtime feed with one TripUpdate per
/// `(trip_id, route_id, delay_secs)` item; for dev tools and tests that need
/// to inject delays.
///
/// Each delay is put on the arrival at `stop_sequence` 1 so that, by the
/// GTFS-Realtime propagation rule, it applies to the whole trip. Entity ids
/// are `tu-{index}-{trip_id}`, unique even if a trip is listed twice.
pub fn encode_trip_updates(feed_timestamp: u64, delays: &[(String, Option<String>, i32)]) -> Vec<u8> {
    encode_feed(feed_timestamp, &FeedSpec { delays: delays.to_vec(), ..Default::default() })
}

/// Replays a recorded message as if sent at `now`: the header timestamp, each update's
/// measurement time and every absolute stop time are moved by the same amount, so a
/// recording is accepted as fresh and keeps its delays. For dev tools (`kippu feed-delay
/// --as-live`); fields this crate does not know are dropped.
///
/// # Errors
///
/// As [`decode_message`].
pub fn restamp(bytes: &[u8], now: u64) -> Result<Vec<u8>> {
    let mut feed = FeedMessage::decode(bytes)?;
    if feed.header.gtfs_realtime_version.is_empty() {
        return Err(GtfsError::MissingHeader);
    }
    let shift = now as i64 - feed.header.timestamp.unwrap_or(now) as i64;
    let moved = |t: u64| (t as i64 + shift).max(0) as u64;
    feed.header.timestamp = Some(now);
    for tu in feed.entity.iter_mut().filter_map(|e| e.trip_update.as_mut()) {
        tu.timestamp = tu.timestamp.map(moved);
        for ev in tu.stop_time_update.iter_mut().flat_map(|s| [s.arrival.as_mut(), s.departure.as_mut()]).flatten() {
            ev.time = ev.time.map(|t| t + shift);
        }
    }
    Ok(feed.encode_to_vec())
}

/// Producers disagree on whether "unknown" is an absent field or "".
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
