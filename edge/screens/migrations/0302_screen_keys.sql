-- Screen device keys (issue 13): one per screen, provisioned by staff, kept only as SHA-256
-- (a 192-bit random key needs no salt or slow hash). The player page presents the key; only
-- then does it get plans, overlays (login codes) and may it report plays.

CREATE TABLE screen_keys (
    screen_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created_by TEXT,
    created_at TEXT NOT NULL
);
