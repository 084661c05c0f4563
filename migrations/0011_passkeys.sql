-- Passkeys (WebAuthn discoverable credentials) of traveler accounts. `static_state` and
-- `dynamic_state` are webauthn_rp's binary encodings (public key and extensions; sign
-- counter, backup and user-verified flags), hex.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    user_handle TEXT NOT NULL,
    static_state TEXT NOT NULL,
    dynamic_state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used BIGINT
);
CREATE INDEX passkeys_holder ON passkeys (holder);
