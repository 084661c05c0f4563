-- Reorg-safe ledger: a follower remembers the hashes of the blocks it read, so a
-- block whose parent hash no longer matches shows a reorg; everything booked
-- above the last block still on chain is rolled back and read again.

-- The decoded event (JSON), so read models can be rebuilt when a reorg removes events.
ALTER TABLE chain_events ADD COLUMN payload TEXT NOT NULL DEFAULT '';
-- When its block was mined (POSIX seconds), for reports by day and period; NULL for events booked before.
ALTER TABLE chain_events ADD COLUMN block_time BIGINT;
CREATE INDEX chain_events_time ON chain_events (block_time);

-- Hashes of blocks a follower has read: every range's last block and every block with events.
CREATE TABLE indexed_blocks (
    cursor TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    PRIMARY KEY (cursor, block_number)
);

-- Reorgs handled, for the portal, metrics and audits.
CREATE TABLE reorgs (
    cursor TEXT NOT NULL,
    detected_at BIGINT NOT NULL,
    fork_block BIGINT NOT NULL,
    first_stale_block BIGINT NOT NULL,
    removed_events BIGINT NOT NULL,
    PRIMARY KEY (cursor, detected_at, first_stale_block)
);

-- Each reconciliation of the ledger with the contracts at one block: the differences
-- found (JSON list of {what, ledger, chain}; '[]' when everything agrees).
CREATE TABLE reconciliations (
    checked_at BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    differences TEXT NOT NULL,
    PRIMARY KEY (checked_at, block_number)
);

-- How each bundle's price is settled among its legs' operators at period close:
-- 'list' (as booked at sale), 'usage' (rides tapped) or 'distance' (metres travelled).
ALTER TABLE bundles ADD COLUMN settle_by TEXT NOT NULL DEFAULT 'list';
