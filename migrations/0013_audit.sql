-- The audit log: who did what to what, when and from where. Append-only: each row carries the
-- SHA-256 of the one before it (`prev_hash`) and its own (`hash`, over its fields and place),
-- so `kippu audit verify` finds a row edited, deleted or slipped in. `seq` has no gaps.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    organisation TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    client TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_organisation ON audit_log (organisation, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
