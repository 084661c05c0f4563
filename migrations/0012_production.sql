-- MQTT logins: each gate's own random credential (issued by `kippu gate add|rotate`) and the
-- validators' one (issued by `kippu init`). Only hashes are kept: the SHA-256 the embedded
-- broker checks, and Mosquitto's PBKDF2 line for the password file Kippu writes.
CREATE TABLE mqtt_credentials (
    username TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    mosquitto_line TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Tap batches sent to the chain: rides (Ticket.recordRides, idempotent on the batch key) and
-- the Merkle anchor. A batch's taps are fixed here before anything is sent, so a batch re-sent
-- after a crash is the same batch, with the same key, which the contract takes once.
CREATE TABLE ride_batches (
    batch_key TEXT PRIMARY KEY,
    tap_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    rides_tx TEXT,
    rides_recorded BIGINT,
    rides_refused BIGINT,
    anchored_at BIGINT
);
ALTER TABLE taps ADD COLUMN batch_key TEXT;
-- Why the contract refused to record this tap's ride (e.g. the ticket was refunded meanwhile).
ALTER TABLE taps ADD COLUMN ride_refusal TEXT;
CREATE INDEX taps_batch_key ON taps (batch_key);
