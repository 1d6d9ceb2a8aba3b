-- Cloud schema (SQLite). Timestamps are ISO 8601 UTC text written by the service.

CREATE TABLE areas (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES areas (id),
    level TEXT NOT NULL CHECK (level IN ('city', 'district', 'street', 'community')),
    name TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,  -- '/city/district/street/community/' for prefix scoping
    created_at TEXT NOT NULL
);

CREATE TABLE claim_codes (
    code_hash TEXT PRIMARY KEY,  -- sha256 of the code; the code itself is shown once
    community_id TEXT NOT NULL REFERENCES areas (id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    box_id TEXT
);

CREATE TABLE boxes (
    id TEXT PRIMARY KEY,
    community_id TEXT NOT NULL REFERENCES areas (id),
    name TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    prev_secret TEXT,  -- still accepted until the box first signs with the new one
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_seen_at TEXT,
    software_version TEXT NOT NULL DEFAULT '',
    devices TEXT NOT NULL DEFAULT '[]',
    outbox_rows INTEGER NOT NULL DEFAULT 0,
    outbox_bytes INTEGER NOT NULL DEFAULT 0,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    feed_cursor INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX boxes_by_community ON boxes (community_id);

CREATE TABLE nonces (
    box_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (box_id, nonce)
);
CREATE INDEX nonces_by_ts ON nonces (ts);

-- Every uploaded outbox row, once per (box, seq).
CREATE TABLE records (
    box_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (box_id, seq)
) WITHOUT ROWID;
CREATE INDEX records_by_kind ON records (kind, ts);

-- Per-box download feed; id is the cursor.
CREATE TABLE feed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    box_id TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action TEXT NOT NULL,
    args TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    created_by TEXT NOT NULL
);
CREATE INDEX feed_by_box ON feed (box_id, id);

CREATE TABLE content (
    sha256 TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    mime TEXT NOT NULL,
    title TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE ops_users (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    area_id TEXT REFERENCES areas (id),  -- NULL: the whole network
    created_at TEXT NOT NULL
);
