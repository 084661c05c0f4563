-- Passkeys (WebAuthn discoverable credentials) of staff accounts: a second way to sign in to
-- the portal, beside the password. Kept apart from travelers' passkeys, so a traveler's
-- credential can never open a staff session, nor a staff one a traveler's. Encodings as in
-- `passkeys` (webauthn_rp's binary states, hex).
CREATE TABLE staff_passkeys (
    credential_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES staff_accounts (id),
    user_handle TEXT NOT NULL,
    static_state TEXT NOT NULL,
    dynamic_state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used BIGINT
);
CREATE INDEX staff_passkeys_account ON staff_passkeys (account_id);
