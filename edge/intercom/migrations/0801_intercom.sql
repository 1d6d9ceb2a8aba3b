-- Visitor intercom (issue 18): one row per call, updated as it goes (the intercom_call record).
CREATE TABLE intercom_calls (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    door_id TEXT NOT NULL,
    flat TEXT NOT NULL,                 -- 楼号-单元-房号
    source TEXT NOT NULL,               -- screen, button, panel
    screen_id TEXT,
    state TEXT NOT NULL,                -- ringing, answered, opened, missed, declined
    phones INTEGER NOT NULL DEFAULT 0,
    answered_by TEXT,
    opened_by TEXT,
    access_event_id TEXT,
    pass_id TEXT,
    answer_ms INTEGER,
    ended_at TEXT
);
CREATE INDEX intercom_calls_flat ON intercom_calls (flat, ts);
