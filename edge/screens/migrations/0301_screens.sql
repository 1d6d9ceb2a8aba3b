-- Screens (issue 5): content, playlists, schedules, emergencies as standard payloads with the
-- columns the player queries; proof-of-play rows; the content cache index; player liveness.

CREATE TABLE screen_content (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    sha256 TEXT,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX screen_content_by_sha ON screen_content (sha256);

CREATE TABLE screen_playlists (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE screen_schedules (
    id TEXT PRIMARY KEY,
    playlist_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE screen_emergencies (
    id TEXT PRIMARY KEY,
    starts_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    cancelled_at TEXT,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Screens added at run time (API, cloud) beside the [[screens]] of the config.
CREATE TABLE screens (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Whether each screen's player page reports in (online/offline), for health events.
CREATE TABLE screen_players (
    screen_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_seen TEXT,
    since TEXT NOT NULL
);

-- Proof of play; the id comes from the player so a re-sent report is stored once.
CREATE TABLE play_records (
    id TEXT PRIMARY KEY,
    screen_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX play_records_by_screen ON play_records (screen_id, started_at);

-- Verified files of the content cache (content-addressed by sha256).
CREATE TABLE content_cache (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    verified_at TEXT NOT NULL,
    last_used TEXT NOT NULL
);
