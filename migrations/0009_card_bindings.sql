-- Contactless cards bound to tickets (issue 7). A card presents one ticket; binding it
-- again moves it. `sig` is the holder's EIP-712 CardBinding signature (hex), which every
-- validator checks itself, so a row edited in the database binds nothing.
CREATE TABLE card_bindings (
    card_key TEXT PRIMARY KEY,
    ticket_id BIGINT NOT NULL,
    holder TEXT NOT NULL,
    sig TEXT NOT NULL,
    bound_at BIGINT NOT NULL
);
CREATE INDEX card_bindings_holder ON card_bindings (holder);
