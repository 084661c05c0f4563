-- Period close with usage settlement (issue 6).
-- Positions between operators that a close could not move yet (the paying operator's
-- claim on chain was too small): added to the next close's positions, never dropped.
CREATE TABLE settlement_carry (
    operator_id BIGINT PRIMARY KEY,
    amount BIGINT NOT NULL
);

-- One row per period Kippu closed: the window of plans re-apportioned, what moved and
-- what was carried, and the transaction.
CREATE TABLE period_closes (
    period_id BIGINT PRIMARY KEY,
    window_from BIGINT NOT NULL,
    window_to BIGINT NOT NULL,
    plans BIGINT NOT NULL,
    taps BIGINT NOT NULL,
    transfers TEXT NOT NULL,
    carried TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    closed_at BIGINT NOT NULL
);

-- The ledger's postings without the foreign key to chain_events: PostgreSQL checks a
-- foreign key with a trigger per inserted row, which held ledger ingest to about 35,000
-- events/s. Postings are only written by `Store::apply_events`, in the transaction that
-- inserts their event and from the keys that insert returned, and deleted before their
-- events on rollback, so the key cannot dangle; `Store::ledger_imbalance` and the
-- reconciliation check the books. Rebuilt rather than altered: SQLite cannot drop a constraint.
CREATE TABLE ledger_postings_next (
    event_key TEXT NOT NULL,
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (event_key, account)
);
INSERT INTO ledger_postings_next (event_key, account, amount) SELECT event_key, account, amount FROM ledger_postings;
DROP TABLE ledger_postings;
ALTER TABLE ledger_postings_next RENAME TO ledger_postings;
CREATE INDEX ledger_postings_account ON ledger_postings (account);

-- Reports bucket events by `block_time / 86400`, which an index on block_time cannot
-- serve; it only cost every ingested event a second index insert. Period boundaries are
-- found through a partial index holding just the closes.
DROP INDEX chain_events_time;
CREATE INDEX chain_events_closes ON chain_events (block_number, log_index) WHERE kind = 'PeriodClosed';
