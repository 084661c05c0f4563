//! GTFS-Realtime TripUpdates reduced to what a delay policy needs.

use prost::Message;
use serde::{Deserialize, Serialize};
use tiny_keccak::{Hasher, Keccak};

use crate::proto::{
    feed_header::Incrementality,
    trip_update::{StopTimeEvent, StopTimeUpdate},
    FeedEntity, FeedHeader, FeedMessage, TripDescriptor, TripUpdate,
};
use crate::{GtfsError, Result};

/// The delay of one trip run as reported by one GTFS-Realtime feed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Decodes a protobuf GTFS-Realtime `FeedMessage` and returns one
/// [`TripDelay`] per TripUpdate entity, in feed order.
///
/// Skipped rather than rejected, because one odd entity should not hide the
/// rest of a feed: entities marked `is_deleted` (they retract, not report),
/// entities without a TripUpdate (vehicle positions, alerts), and TripUpdates
/// without a trip_id (route-wide selectors cannot be matched to a ticket).
///
/// # Errors
///
/// [`GtfsError::Decode`] for bytes that are not valid protobuf (including
/// truncated messages) and [`GtfsError::MissingHeader`] for a message without
/// `gtfs_realtime_version`, such as an empty buffer.
pub fn decode_feed(bytes: &[u8]) -> Result<Vec<TripDelay>> {
    let feed = FeedMessage::decode(bytes)?;
    // prost does not enforce proto2 `required`, so check the one field that
    // distinguishes a real feed from an empty or foreign buffer.
    if feed.header.gtfs_realtime_version.is_empty() {
        return Err(GtfsError::MissingHeader);
    }
    let feed_timestamp = feed.header.timestamp.unwrap_or(0);
    Ok(feed
        .entity
        .into_iter()
        .filter(|e| !e.is_deleted.unwrap_or(false))
        .filter_map(|e| {
            let tu = e.trip_update?;
            let trip_id = non_empty(tu.trip.trip_id)?;
            let stop_delays = tu
                .stop_time_update
                .iter()
                .flat_map(|stu| [stu.arrival, stu.departure].into_iter().flatten().filter_map(|ev| ev.delay));
            let delay_secs = tu.delay.into_iter().chain(stop_delays).max().unwrap_or(0);
            let observed = tu
                .stop_time_update
                .iter()
                .flat_map(|stu| {
                    [stu.arrival, stu.departure].into_iter().flatten().filter(|ev| ev.delay.is_none()).filter_map(
                        |ev| {
                            ev.time.map(|time| ObservedStop {
                                stop_sequence: stu.stop_sequence,
                                stop_id: non_empty(stu.stop_id.clone()),
                                time,
                            })
                        },
                    )
                })
                .collect();
            Some(TripDelay {
                entity_id: e.id,
                trip_id,
                route_id: non_empty(tu.trip.route_id),
                start_date: non_empty(tu.trip.start_date),
                delay_secs,
                feed_timestamp,
                measured_at: tu.timestamp,
                start_time: non_empty(tu.trip.start_time),
                observed,
            })
        })
        .collect())
}

/// Encodes a full-dataset GTFS-Realtime feed with one TripUpdate per
/// `(trip_id, route_id, delay_secs)` item; for dev tools and tests that need
/// to inject delays.
///
/// Each delay is put on the arrival at `stop_sequence` 1 so that, by the
/// GTFS-Realtime propagation rule, it applies to the whole trip. Entity ids
/// are `tu-{index}-{trip_id}`, unique even if a trip is listed twice.
pub fn encode_trip_updates(feed_timestamp: u64, delays: &[(String, Option<String>, i32)]) -> Vec<u8> {
    let entity = delays
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

/// Producers disagree on whether "unknown" is an absent field or "".
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
