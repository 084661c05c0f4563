-- Organisations and their staff accounts, one-time invitations, staff sessions shared by every
-- process, and API tokens for machines (issue 19). Secrets (passwords, invitation links,
-- session cookies, tokens) are stored only as hashes.

-- The consortium itself ('kippu', made by `kippu init`), operators, issuers and the insurer.
-- An operator's or issuer's slug is the one its catalogue entry and pages use.
CREATE TABLE organisations (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- `password_hash` is an Argon2id PHC string; NULL until the invitation is accepted.
CREATE TABLE staff_accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    organisation TEXT NOT NULL REFERENCES organisations (slug),
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    disabled_at BIGINT
);
CREATE INDEX staff_accounts_organisation ON staff_accounts (organisation);

-- A one-time link that lets an invited account set its password: SHA-256 of the link's secret.
CREATE TABLE staff_invitations (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES staff_accounts (id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Signed-in staff: SHA-256 of the session cookie, so a database copy opens no session.
CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES staff_accounts (id),
    expires_at BIGINT NOT NULL
);
CREATE INDEX staff_sessions_account ON staff_sessions (account_id);

-- Machines' bearer tokens (`kippu_<id>_<secret>`): SHA-256 of the whole token, scopes
-- space-separated.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (slug),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_organisation ON api_tokens (organisation);
