-- Concession issuers Kippu hosts (did:web), with their Ed25519 seed sealed by the keystore.
CREATE TABLE issuers (
    slug TEXT PRIMARY KEY,
    did TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    sealed_seed TEXT NOT NULL
);

-- The consortium's trust list: which issuer may vouch for which concession.
CREATE TABLE trust_list (
    issuer_did TEXT NOT NULL,
    concession TEXT NOT NULL,
    PRIMARY KEY (issuer_did, concession)
);

-- The issuers' registers: what they issued and where its revocation bit is.
-- Indices are drawn at random, so a list position says nothing about when
-- (or to whom) a credential was issued.
CREATE TABLE issued_credentials (
    id TEXT PRIMARY KEY,
    issuer_slug TEXT NOT NULL REFERENCES issuers (slug),
    holder_did TEXT NOT NULL,
    concession TEXT NOT NULL,
    status_index BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    revoked_at BIGINT,
    UNIQUE (issuer_slug, status_index)
);
CREATE INDEX issued_credentials_holder ON issued_credentials (holder_did);

-- The travelers' wallets: credentials as the traveler holds them (from any issuer).
CREATE TABLE wallet_credentials (
    id TEXT NOT NULL,
    holder TEXT NOT NULL,
    body TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (holder, id)
);

-- Account keys that may no longer sign in or sign passes.
CREATE TABLE key_revocations (
    address TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);
