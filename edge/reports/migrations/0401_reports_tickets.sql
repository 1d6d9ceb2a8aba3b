-- Residents' reports, early-warning alerts and repair tickets (issue 6).

CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    text TEXT NOT NULL,
    text_norm TEXT NOT NULL,            -- punctuation/space-free form, for grouping repeats
    category TEXT NOT NULL,
    sentiment REAL NOT NULL,
    polarity TEXT NOT NULL,
    urgency TEXT NOT NULL,
    building TEXT,
    location TEXT,
    resident_id TEXT,
    photos INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    source_tag TEXT,
    group_id TEXT,                      -- id of the first identical report; NULL on the first
    reply TEXT,
    follow_key TEXT NOT NULL,           -- the resident's secret to follow the report
    analysis TEXT NOT NULL,             -- JSON: scores and urgency reasons
    updated_at TEXT NOT NULL
);
CREATE INDEX reports_by_ts ON reports (ts);
CREATE INDEX reports_by_norm ON reports (text_norm, ts);
CREATE INDEX reports_by_building ON reports (building, ts);

-- Photos of reports and tickets; files live under <data_dir>/photos/.
CREATE TABLE photos (
    id TEXT PRIMARY KEY,
    owner_kind TEXT NOT NULL,           -- report | ticket
    owner_id TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT 'submitted',  -- submitted | resolution
    ts TEXT NOT NULL,
    path TEXT NOT NULL,                 -- relative to data_dir
    mime TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX photos_by_owner ON photos (owner_kind, owner_id);

-- Standard Alert records (edge/standard.py Alert.TABLE), any capability may raise them.
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    level TEXT NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS alerts_by_ts ON alerts (ts);

-- Last time an early warning fired per key (trend:<category>:<building>, ...): cool-down.
CREATE TABLE warning_state (
    key TEXT PRIMARY KEY,
    last_ts TEXT NOT NULL,
    alert_id TEXT NOT NULL
);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL,
    urgency TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    due_at TEXT,
    source TEXT NOT NULL,
    device_kind TEXT,
    device_id TEXT,
    report_id TEXT REFERENCES reports (id),
    building TEXT,
    location TEXT,
    resident_id TEXT,
    follow_key TEXT NOT NULL,
    overdue_alert_id TEXT,              -- set once the overdue alert was raised
    updated_at TEXT NOT NULL
);
CREATE INDEX tickets_by_status ON tickets (status, due_at);
CREATE INDEX tickets_by_device ON tickets (device_kind, device_id, status);

-- Every transition of a ticket, never updated or deleted.
CREATE TABLE ticket_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    ts TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    assignee TEXT,
    photos TEXT NOT NULL DEFAULT '[]'   -- photo ids attached with this step
);
CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_id, seq);
