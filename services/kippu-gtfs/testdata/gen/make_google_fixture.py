"""Writes testdata/bullrunner-google-encoded.pb with Google's official
GTFS-Realtime Python bindings, so kippu-gtfs's decoder is tested on bytes it
did not write itself. Run once by hand:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gtfs-realtime-bindings==3.0.0
    /tmp/venv/bin/python testdata/gen/make_google_fixture.py

The tests pin every value set here.
"""
import pathlib

from google.transit import gtfs_realtime_pb2 as rt

feed = rt.FeedMessage()
feed.header.gtfs_realtime_version = "2.0"
feed.header.incrementality = rt.FeedHeader.FULL_DATASET
feed.header.timestamp = 1420459260

# Trip 5 (route C, Mo service) run of 2015-01-05: trip-level delay 240 s, but
# a later stop departs 660 s late, which is the worst and must win.
e = feed.entity.add(id="c-5")
e.trip_update.trip.trip_id = "5"
e.trip_update.trip.route_id = "C"
e.trip_update.trip.start_date = "20150105"
e.trip_update.trip.start_time = "08:00:00"
e.trip_update.delay = 240
s = e.trip_update.stop_time_update.add(stop_sequence=2)
s.arrival.delay = 300
s = e.trip_update.stop_time_update.add(stop_sequence=5)
s.arrival.delay = 600
s.departure.delay = 660

# Trip 11 (route E) with absolute times only: no delay information -> 0.
e = feed.entity.add(id="e-11")
e.trip_update.trip.trip_id = "11"
s = e.trip_update.stop_time_update.add(stop_id="222")
s.arrival.time = 1420459500

# Deleted entity: must be skipped.
e = feed.entity.add(id="gone", is_deleted=True)
e.trip_update.trip.trip_id = "2"
e.trip_update.delay = 3600

# Route-wide update without trip_id: must be skipped.
e = feed.entity.add(id="route-d")
e.trip_update.trip.route_id = "D"
e.trip_update.delay = 1200

# Vehicle position only: must be skipped.
e = feed.entity.add(id="bus-7")
e.vehicle.trip.trip_id = "8"
e.vehicle.position.latitude = 28.0587
e.vehicle.position.longitude = -82.4139

out = pathlib.Path(__file__).resolve().parent.parent / "bullrunner-google-encoded.pb"
out.write_bytes(feed.SerializeToString())
print(f"wrote {out}")
