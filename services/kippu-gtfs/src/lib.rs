//! GTFS handling for Kippu's delay-compensation policies.
//!
//! * [`decode_feed`] / [`encode_trip_updates`]: GTFS-Realtime `FeedMessage`s
//!   in the real protobuf wire format, reduced to one [`TripDelay`] per trip.
//! * [`import_timetable`]: an operator's static GTFS zip, read with the
//!   rust-transit `gtfs-structures` crate and checked, or refused with a report.
//! * [`affected`] / [`delay_minutes`]: the pure payout decision.
//!
//! The crate is a pure library: no network, no clock, no file system (callers
//! hand it bytes), so the same code runs in services, dev tools and tests.
//!
//! ```
//! use kippu_gtfs::{affected, decode_feed, encode_trip_updates};
//!
//! // Bull Runner trip 1 on route A, 7 minutes late.
//! let bytes = encode_trip_updates(1_420_459_200, &[("1".into(), Some("A".into()), 420)]);
//! let delays = decode_feed(&bytes)?;
//! assert_eq!(delays[0].trip_id, "1");
//! assert!(affected(&delays[0], 5));
//! # Ok::<(), kippu_gtfs::GtfsError>(())
//! ```
//!
//! # Why the protobuf types are checked in
//!
//! The crates.io GTFS-Realtime bindings (`gtfs-realtime`, `gtfs-rt`) run
//! prost-build in a build script, which needs a `protoc` binary on every
//! machine that builds the workspace; Kippu's machines and CI have none.
//! So `src/proto/transit_realtime.rs` is that same prost-build output, made
//! once from `proto/gtfs-realtime.proto`, and only `prost` is needed at build
//! time. To regenerate after a schema update: in a scratch crate depending on
//! `prost-build = "0.14"` and `protoc-bin-vendored`, set `PROTOC` to
//! `protoc_bin_vendored::protoc_bin_path()` and call
//! `prost_build::Config::new().out_dir(..).compile_protos(&["gtfs-realtime.proto"], &["."])`,
//! then copy the result over the file, keeping its header comment.

mod guard;
mod policy;
pub mod proto;
mod realtime;
mod timetable;

pub use guard::{Accepted, FeedGuard, FeedRejection};
pub use policy::{affected, affected_by, delay_minutes, Affected, RiderIndex, RiderTap, Windows};
pub use realtime::{
    decode_feed, decode_message, encode_feed, encode_trip_updates, restamp, FeedContent, FeedSpec, ObservedStop,
    ServiceAlert, TripDelay,
};
pub use timetable::{
    import_timetable, import_timetable_with, ImportLimits, ImportReport, Timetable, TimetableSummary, TripSchedule,
};

/// Everything that can go wrong reading GTFS or GTFS-Realtime input.
///
/// All input is untrusted (feeds come from third parties), so every failure is
/// reported here rather than by panicking.
#[derive(Debug, thiserror::Error)]
pub enum GtfsError {
    /// The bytes are not a valid protobuf encoding of a `FeedMessage`
    /// (garbage, truncated, wrong wire types).
    #[error("malformed GTFS-Realtime protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The protobuf parsed but lacks the header every GTFS-Realtime feed must
    /// carry; protobuf itself cannot tell an empty buffer from an empty
    /// message, so this is how empty or foreign input is caught.
    #[error("not a GTFS-Realtime feed: header.gtfs_realtime_version is missing")]
    MissingHeader,
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, GtfsError>;
