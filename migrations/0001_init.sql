-- One portable schema for SQLite (embedded default) and PostgreSQL (production):
-- BIGINT everywhere for integers and amounts (FARE minor units), TEXT for
-- addresses/hashes in 0x-lowercase form, no autoincrement (every key is natural).

CREATE TABLE chain_cursor (
    name TEXT PRIMARY KEY,
    next_block BIGINT NOT NULL
);

-- Every event booked, keyed by (block_hash, log_index): replays are no-ops.
CREATE TABLE chain_events (
    event_key TEXT PRIMARY KEY,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX chain_events_block ON chain_events (block_number);

CREATE TABLE ledger_postings (
    event_key TEXT NOT NULL REFERENCES chain_events (event_key),
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (event_key, account)
);
CREATE INDEX ledger_postings_account ON ledger_postings (account);

CREATE TABLE operators (
    id BIGINT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    payee TEXT NOT NULL
);

CREATE TABLE products (
    id BIGINT PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    name TEXT NOT NULL,
    price BIGINT NOT NULL,
    duration_secs BIGINT NOT NULL,
    rides BIGINT NOT NULL,
    insurance BIGINT NOT NULL
);

CREATE TABLE bundles (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    discount_bps BIGINT NOT NULL,
    product_ids TEXT NOT NULL
);

CREATE TABLE gates (
    gate_key TEXT PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    station TEXT NOT NULL
);

CREATE TABLE travelers (
    address TEXT PRIMARY KEY,
    did TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    sealed_key TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token TEXT PRIMARY KEY,
    address TEXT NOT NULL REFERENCES travelers (address),
    expires_at BIGINT NOT NULL
);

CREATE TABLE plans (
    plan_id BIGINT PRIMARY KEY,
    traveler TEXT NOT NULL,
    bundle_id BIGINT NOT NULL,
    price BIGINT NOT NULL,
    valid_from BIGINT NOT NULL,
    event_key TEXT NOT NULL
);

CREATE TABLE tickets (
    id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    plan_id BIGINT NOT NULL,
    operator_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    rides BIGINT NOT NULL,
    share BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tickets_holder ON tickets (holder);

CREATE TABLE policies (
    policy_id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL
);

CREATE TABLE vouchers (
    id BIGINT PRIMARY KEY,
    policy_id BIGINT NOT NULL,
    holder TEXT NOT NULL,
    value BIGINT NOT NULL,
    operator_id BIGINT NOT NULL,
    expiry BIGINT NOT NULL,
    delay_id TEXT NOT NULL,
    redeemed_by BIGINT
);
CREATE INDEX vouchers_holder ON vouchers (holder);

-- Taps keyed by the gate's scan id, so a re-sent tap is recorded once.
CREATE TABLE taps (
    scan_id TEXT PRIMARY KEY,
    ticket_id BIGINT NOT NULL,
    operator_id BIGINT NOT NULL,
    gate_key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX taps_ticket ON taps (ticket_id);

-- Card top-ups: one row per Stripe Checkout Session; the webhook event ids seen.
CREATE TABLE payments (
    session_id TEXT PRIMARY KEY,
    traveler TEXT NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);

-- Delay reports already acted on: (delay id, policy id) pays at most once.
CREATE TABLE delay_claims (
    delay_id TEXT NOT NULL,
    policy_id BIGINT NOT NULL,
    trip_id TEXT NOT NULL,
    delay_minutes BIGINT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (delay_id, policy_id)
);
