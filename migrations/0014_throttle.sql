-- Failed attempts per key (`scope` says what kind: a staff account, a client address, a token),
-- shared by every process: a lock set by one holds in all. `window_start` opens the current
-- counting window; `locked_until` is 0 when the key is not locked.
CREATE TABLE throttle (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
