-- Which on-chain tap batch (Merkle root) a tap was anchored in; NULL until anchored.
ALTER TABLE taps ADD COLUMN batch_id BIGINT;
CREATE INDEX taps_unanchored ON taps (batch_id);
