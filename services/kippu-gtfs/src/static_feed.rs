//! The parts of a static GTFS feed (a zip of CSV files) that policies use.

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};
use zip::ZipArchive;

use crate::{GtfsError, Result};

/// One row of `routes.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// `route_id`.
    pub route_id: String,
    /// `agency_id`; GTFS allows omitting it when the feed has one agency.
    #[serde(default)]
    pub agency_id: Option<String>,
    /// `route_short_name`, empty when the feed gives only a long name.
    #[serde(rename = "route_short_name", default)]
    pub short_name: String,
    /// `route_long_name`, empty when the feed gives only a short name.
    #[serde(rename = "route_long_name", default)]
    pub long_name: String,
}

/// One row of `trips.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trip {
    /// `trip_id`, the key GTFS-Realtime TripUpdates refer to.
    pub trip_id: String,
    /// `route_id` of the route the trip runs on.
    pub route_id: String,
    /// `service_id`, the calendar the trip runs on.
    pub service_id: String,
}

/// Reads `routes.txt` from a static GTFS zip.
///
/// # Errors
///
/// [`GtfsError::Zip`] if the bytes are not a zip, [`GtfsError::MissingFile`]
/// if it has no `routes.txt`, [`GtfsError::Csv`] for bad CSV or a missing
/// `route_id` column.
pub fn load_routes(zip_bytes: &[u8]) -> Result<Vec<Route>> {
    read_csv(zip_bytes, "routes.txt")
}

/// Reads `trips.txt` from a static GTFS zip.
///
/// # Errors
///
/// As [`load_routes`], for `trips.txt` and its `trip_id`, `route_id` and
/// `service_id` columns.
pub fn load_trips(zip_bytes: &[u8]) -> Result<Vec<Trip>> {
    read_csv(zip_bytes, "trips.txt")
}

fn read_csv<T: serde::de::DeserializeOwned>(zip_bytes: &[u8], file: &'static str) -> Result<Vec<T>> {
    let mut archive = ZipArchive::new(Cursor::new(zip_bytes))?;
    // Many published feeds are zipped with an enclosing folder, so match on
    // the last path component instead of the exact entry name.
    let index = (0..archive.len())
        .find(|&i| archive.name_for_index(i).is_some_and(|name| name.rsplit('/').next() == Some(file)))
        .ok_or(GtfsError::MissingFile(file))?;
    let mut text = Vec::new();
    archive.by_index(index)?.read_to_end(&mut text).map_err(|e| GtfsError::Zip(e.into()))?;
    let csv_err = |source| GtfsError::Csv { file, source };
    csv::ReaderBuilder::new()
        // Real feeds pad headers and values with spaces (Bull Runner's
        // frequencies.txt has " exact_times"); GTFS values never rely on
        // surrounding whitespace.
        .trim(csv::Trim::All)
        .from_reader(text.as_slice())
        .deserialize()
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(csv_err)
}
