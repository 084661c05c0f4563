-- Delay insurance pays who was affected, under each insured product's own terms.

-- An on-board validator names the run its vehicle works; a stop gate stands at a GTFS stop.
ALTER TABLE taps ADD COLUMN trip_id TEXT;
ALTER TABLE taps ADD COLUMN trip_date TEXT;
CREATE INDEX taps_at ON taps (at);
ALTER TABLE gates ADD COLUMN stop_id TEXT;
ALTER TABLE gates ADD COLUMN on_board BIGINT NOT NULL DEFAULT 0;

-- Products name the GTFS routes and fare zones of the operator's timetable they are valid on
-- (space-separated ids; '' = the whole network of the operator).
ALTER TABLE products ADD COLUMN routes TEXT NOT NULL DEFAULT '';
ALTER TABLE products ADD COLUMN zones TEXT NOT NULL DEFAULT '';

-- Terms of each insured product; the same terms are set on DelayInsurance, which enforces them.
CREATE TABLE cover_terms (
    product_id BIGINT PRIMARY KEY REFERENCES products (id),
    threshold_minutes BIGINT NOT NULL,
    voucher_kind TEXT NOT NULL,
    voucher_operator_id BIGINT NOT NULL,
    voucher_value BIGINT NOT NULL,
    voucher_lifetime_secs BIGINT NOT NULL,
    max_per_trip BIGINT NOT NULL,
    max_per_day BIGINT NOT NULL
);

-- Why a claim was made: 'tapped' (rode the run) or 'not_carried' (waited at a stop it cancelled or skipped).
ALTER TABLE delay_claims ADD COLUMN reason TEXT NOT NULL DEFAULT 'tapped';
ALTER TABLE delays ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;

-- Service alerts of the newest accepted GTFS-Realtime message (a full dataset replaces the previous set).
CREATE TABLE service_alerts (
    alert_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
