-- The outbox keeps each write's latest signed transaction, so a transaction the node dropped
-- is broadcast again as the very same transaction (its nonce can be included once), and a
-- failed write's revert data, so the request waiting for it gets the contract's typed refusal.
ALTER TABLE chain_writes ADD COLUMN raw_tx TEXT;
ALTER TABLE chain_writes ADD COLUMN revert_data TEXT;
