-- Late trips the insurer acted on (over the threshold), one row per trip run,
-- for the delay dashboard. Vouchers themselves come from chain events.
CREATE TABLE delays (
    delay_id TEXT PRIMARY KEY,
    trip_id TEXT NOT NULL,
    route_id TEXT NOT NULL,
    max_minutes BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX delays_route ON delays (route_id);
