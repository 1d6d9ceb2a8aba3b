-- Foundation: key/value meta, the event journal the bus publishes from, the cloud outbox,
-- device states and their history, and access events.
-- Migration numbers are grouped by capability: 00xx foundation, 01xx faces, 02xx access,
-- 03xx screens, 04xx reports and tickets, 05xx sync, 06xx installer, 07xx portal.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every stored event, in commit order; the MQTT bus publishes from here (cursor in meta).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    device_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL
);

-- Records that must reach the cloud. seq is AUTOINCREMENT so it is never reused, even after
-- acknowledged rows are deleted: it is the per-box sequence number the cloud deduplicates on.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX outbox_by_priority ON outbox (priority, seq);

-- Current state of each configured device.
CREATE TABLE devices (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'offline',
    reason TEXT NOT NULL DEFAULT '',
    since TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE device_health (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    previous TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX device_health_by_device ON device_health (device_kind, device_id, ts);

CREATE TABLE access_events (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    door_id TEXT NOT NULL,
    method TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    resident_id TEXT,
    pass_id TEXT,
    actor TEXT,
    similarity REAL,
    liveness REAL,
    latency_ms REAL,
    relay_changed INTEGER
);
CREATE INDEX access_events_by_ts ON access_events (ts);
