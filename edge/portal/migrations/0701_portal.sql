-- Resident portal (issue 9): logins, reading behaviour, community services. Nothing here is
-- synced as rows: reading analytics leave the box as counts (reading_stats records).

-- Who a portal identity is (the same resident id the access engine uses).
CREATE TABLE portal_residents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    building TEXT,
    unit TEXT,
    updated_at TEXT NOT NULL
);

-- One-time login codes; only the SHA-256 of a code is kept.
CREATE TABLE portal_codes (
    code_hash TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES portal_residents (id),
    channel TEXT NOT NULL,              -- staff, print, door, screen
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

-- Sessions (bearer token = cookie value); only the SHA-256 of a token is kept.
CREATE TABLE portal_sessions (
    id TEXT PRIMARY KEY,                -- public handle for listing and revoking
    token_hash TEXT NOT NULL UNIQUE,
    resident_id TEXT NOT NULL REFERENCES portal_residents (id),
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX portal_sessions_by_resident ON portal_sessions (resident_id);

-- Every opening of an item; dwell grows while the page stays open. counted / dwell_counted_ms
-- say what already went into a reading_stats record (each read is counted once).
CREATE TABLE portal_reads (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    building TEXT,
    opened_at TEXT NOT NULL,
    first_read INTEGER NOT NULL,        -- 1: this resident's first read of this item
    dwell_ms INTEGER NOT NULL DEFAULT 0,
    counted INTEGER NOT NULL DEFAULT 0,
    dwell_counted_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX portal_reads_by_resident ON portal_reads (resident_id, opened_at);
CREATE INDEX portal_reads_by_content ON portal_reads (content_id, opened_at);
CREATE INDEX portal_reads_uncounted ON portal_reads (counted, content_id);

CREATE TABLE portal_acks (
    resident_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    acked_at TEXT NOT NULL,
    counted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resident_id, content_id)
);

-- Community events and volunteer activities.
CREATE TABLE portal_events (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    place TEXT NOT NULL DEFAULT '',
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 1),
    volunteer INTEGER NOT NULL DEFAULT 0,
    hours REAL NOT NULL DEFAULT 0,      -- volunteer hours credited per attendee
    status TEXT NOT NULL DEFAULT 'open',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE portal_signups (
    event_id TEXT NOT NULL REFERENCES portal_events (id),
    resident_id TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    attended INTEGER NOT NULL DEFAULT 0,
    hours REAL NOT NULL DEFAULT 0,      -- volunteer hours credited
    credited_by TEXT,
    PRIMARY KEY (event_id, resident_id)
);

-- Notice board (staff) and second-hand / resource exchange board (residents).
CREATE TABLE portal_posts (
    id TEXT PRIMARY KEY,
    board TEXT NOT NULL CHECK (board IN ('notice', 'exchange')),
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL,               -- resident id or staff token name
    building TEXT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'flagged', 'hidden')),
    category TEXT,                      -- taxonomy code given when hidden or flagged
    moderated_by TEXT,
    moderated_at TEXT,
    note TEXT
);
CREATE INDEX portal_posts_by_board ON portal_posts (board, status, created_at);

CREATE TABLE portal_flags (
    post_id TEXT NOT NULL REFERENCES portal_posts (id),
    resident_id TEXT NOT NULL,
    category TEXT NOT NULL,             -- taxonomy code (config/taxonomy.toml)
    reason TEXT NOT NULL DEFAULT '',
    flagged_at TEXT NOT NULL,
    PRIMARY KEY (post_id, resident_id)
);
