-- Traveler accounts (issue 8): e-mail and password sign-in, and the phones whose device
-- keys an account certified to sign passes.

-- The password fallback: an Argon2id PHC string, never the password. One login per account.
CREATE TABLE password_logins (
    email TEXT PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Device keys (Ed25519, generated non-extractable in the phone's WebCrypto) that the
-- account key certified with an EIP-712 DeviceCert. Revoking one (a lost phone) makes
-- every validator and gate snapshot refuse its passes.
CREATE TABLE devices (
    device_key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    cert_expiry BIGINT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_holder ON devices (holder);
