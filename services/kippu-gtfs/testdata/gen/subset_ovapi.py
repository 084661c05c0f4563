"""Cuts services/kippu-gtfs/testdata/agency-rt/ovapi-trip-updates-subset.pb out of the
real OVapi TripUpdates message shipped in gtfsr-kit 8.0.1 (PyPI sdist, data/tripUpdates.pb,
2,493,169 bytes). The cut is made on the protobuf wire: the header record and the chosen
entity records are copied byte for byte, so every entity is exactly as OVapi sent it.
Run from a directory holding the unpacked sdist, with gtfs-realtime-bindings installed.
"""
import sys
from google.transit import gtfs_realtime_pb2 as rt
raw = open('gtfsr_kit-8.0.1/data/tripUpdates.pb','rb').read()
def varint(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i
recs = []  # (field, start, end, payload)
i = 0
while i < len(raw):
    st = i
    key, i = varint(raw, i)
    f, wt = key >> 3, key & 7
    assert wt == 2
    n, i = varint(raw, i)
    recs.append((f, st, i + n, raw[i:i+n])); i += n
header = [r for r in recs if r[0] == 1]
ents = [r for r in recs if r[0] == 2]
print(len(ents), 'entities', file=sys.stderr)
keep = []
cancel = skip = late = small = 0
want = {'17921312', '8803145'}
for r in ents:
    e = rt.FeedEntity(); e.ParseFromString(r[3])
    tu = e.trip_update
    tid = tu.trip.trip_id
    d = max([x.arrival.delay for x in tu.stop_time_update if x.HasField('arrival')] + [x.departure.delay for x in tu.stop_time_update if x.HasField('departure')] + [0])
    sk = any(x.schedule_relationship == 1 for x in tu.stop_time_update)
    c = tu.trip.schedule_relationship == 3
    take = False
    if tid in want: take = True
    elif c and cancel < 3: cancel += 1; take = True
    elif sk and skip < 4 and len(r[3]) < 3000: skip += 1; take = True
    elif d >= 900 and late < 6 and len(r[3]) < 2500: late += 1; take = True
    elif d < 300 and small < 8 and len(r[3]) < 1500: small += 1; take = True
    if take: keep.append(r)
out = b''.join(raw[r[1]:r[2]] for r in header + keep)
open('ovapi-trip-updates-subset.pb','wb').write(out)
m = rt.FeedMessage(); m.ParseFromString(out)
print(len(out), 'bytes', len(m.entity), 'entities', m.header.timestamp, m.header.gtfs_realtime_version, file=sys.stderr)
for e in m.entity:
    tu = e.trip_update
    d = max([x.arrival.delay for x in tu.stop_time_update if x.HasField('arrival')] + [x.departure.delay for x in tu.stop_time_update if x.HasField('departure')] + [tu.delay if tu.HasField('delay') else 0] + [-10**9])
    print(e.id, tu.trip.trip_id, tu.trip.route_id, tu.trip.start_date, tu.trip.schedule_relationship, d, [x.stop_id for x in tu.stop_time_update if x.schedule_relationship == 1][:5], tu.timestamp)
