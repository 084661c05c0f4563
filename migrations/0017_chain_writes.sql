-- The chain-write outbox (issue 20): every transaction Kippu sends is first a row here, keyed
-- by the business fact that causes it (kind + id: a payment, a purchase request, a claim, a
-- tap batch, a period), with the call to make, so it can be sent again exactly as first
-- recorded. `stage` follows kippu_domain::outbox::Stage; hashes are 0x-hex.
CREATE TABLE chain_writes (
    kind TEXT NOT NULL,
    business_id TEXT NOT NULL,
    call TEXT NOT NULL,
    sender TEXT NOT NULL,
    stage TEXT NOT NULL,
    nonce BIGINT,
    tx_hash TEXT,
    sent_at BIGINT,
    block BIGINT,
    block_hash TEXT,
    attempts BIGINT NOT NULL,
    confirmed_once BIGINT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, business_id)
);
CREATE INDEX chain_writes_stage ON chain_writes (stage, updated_at);
