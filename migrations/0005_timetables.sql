-- Operators' imported static GTFS feeds, every version kept; the newest is current.
CREATE TABLE timetables (
    operator_slug TEXT NOT NULL,
    version BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    summary TEXT NOT NULL,
    feed TEXT NOT NULL,
    PRIMARY KEY (operator_slug, version)
);
