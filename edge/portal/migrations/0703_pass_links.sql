-- Share links of visitor passes (/r/v/<token>): a visitor opens the pass (PIN + QR) without a
-- login. The box keeps only a hash of the link's token and the PIN sealed with a key derived
-- from that token, so neither the table nor a backup shows a PIN or a working link.
CREATE TABLE IF NOT EXISTS portal_pass_links (
    id TEXT PRIMARY KEY,          -- SHA-256 of the token (hex)
    pass_id TEXT NOT NULL,
    sealed BLOB NOT NULL,         -- nonce || AES-GCM(PIN), key from the token
    valid_to TEXT NOT NULL,       -- the pass's end: the link ends with it
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_pass_links_valid_to ON portal_pass_links (valid_to);
