-- Leases for jobs that must run in one process at a time (the chain-write outbox's sender
-- first; issue 21 puts the other singleton jobs here too). A process holds a lease while it
-- renews it before `expires_at`; when it dies, another takes it over once it expires.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
