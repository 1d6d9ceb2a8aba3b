-- Console, second slice (docs/console.md): report search by index, a weekly report roll-up for
-- the charts, and update roll-outs in waves.

-- Report search: FTS5's trigram tokenizer finds any substring of three or more characters,
-- Chinese included, without a word list (shorter terms fall back to a scan). records has no
-- rowid (WITHOUT ROWID), so report_search numbers the reports for the FTS table.
CREATE TABLE report_search (
    id INTEGER PRIMARY KEY,
    box_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    UNIQUE (box_id, seq)
);
CREATE VIRTUAL TABLE report_fts USING fts5(text, tokenize = 'trigram');
-- A search term may be a report's id; ticket history and corrections look records up by
-- id too. Without this, each of those read every record of the kind.
CREATE INDEX records_by_record_id ON records (kind, record_id);

-- Weekly report roll-up, kept by a trigger as reports arrive (a duplicate upload inserts
-- nothing, so it counts nothing). week: the Monday of the report's own day (payload ts; the
-- arrival day when that is not a date); category '' when the report had none.
CREATE TABLE report_weekly (
    week TEXT NOT NULL,
    box_id TEXT NOT NULL,
    category TEXT NOT NULL,
    n INTEGER NOT NULL,
    mood_sum REAL NOT NULL,  -- sum of numeric sentiments
    mood_n INTEGER NOT NULL,  -- how many reports had one
    PRIMARY KEY (week, box_id, category)
) WITHOUT ROWID;
-- A district's charts: its boxes' weeks (the key serves the whole network's).
CREATE INDEX report_weekly_by_box ON report_weekly (box_id, week);

CREATE TRIGGER records_report_added AFTER INSERT ON records WHEN NEW.kind = 'report'
BEGIN
    INSERT INTO report_weekly (week, box_id, category, n, mood_sum, mood_n) VALUES (
        coalesce(date(substr(json_extract(NEW.payload, '$.ts'), 1, 10), 'weekday 0', '-6 days'),
                 date(substr(NEW.received_at, 1, 10), 'weekday 0', '-6 days')),
        NEW.box_id, coalesce(json_extract(NEW.payload, '$.category'), ''), 1,
        CASE WHEN json_type(NEW.payload, '$.sentiment') IN ('integer', 'real')
             THEN json_extract(NEW.payload, '$.sentiment') ELSE 0 END,
        CASE WHEN json_type(NEW.payload, '$.sentiment') IN ('integer', 'real') THEN 1 ELSE 0 END)
    ON CONFLICT (week, box_id, category) DO UPDATE SET n = n + 1,
        mood_sum = mood_sum + excluded.mood_sum, mood_n = mood_n + excluded.mood_n;
    INSERT INTO report_search (box_id, seq) VALUES (NEW.box_id, NEW.seq);
    INSERT INTO report_fts (rowid, text) VALUES (
        (SELECT id FROM report_search WHERE box_id = NEW.box_id AND seq = NEW.seq),
        coalesce(json_extract(NEW.payload, '$.text'), ''));
END;

-- A deleted report (retention) leaves the search; the roll-up keeps counting it.
CREATE TRIGGER records_report_removed AFTER DELETE ON records WHEN OLD.kind = 'report'
BEGIN
    DELETE FROM report_fts WHERE rowid = (
        SELECT id FROM report_search WHERE box_id = OLD.box_id AND seq = OLD.seq);
    DELETE FROM report_search WHERE box_id = OLD.box_id AND seq = OLD.seq;
END;

INSERT INTO report_weekly (week, box_id, category, n, mood_sum, mood_n)
SELECT coalesce(date(substr(json_extract(payload, '$.ts'), 1, 10), 'weekday 0', '-6 days'),
                date(substr(received_at, 1, 10), 'weekday 0', '-6 days')),
       box_id, coalesce(json_extract(payload, '$.category'), ''), count(*),
       coalesce(sum(CASE WHEN json_type(payload, '$.sentiment') IN ('integer', 'real')
                         THEN json_extract(payload, '$.sentiment') END), 0),
       sum(CASE WHEN json_type(payload, '$.sentiment') IN ('integer', 'real') THEN 1 ELSE 0 END)
FROM records WHERE kind = 'report' GROUP BY 1, 2, 3;
INSERT INTO report_search (box_id, seq) SELECT box_id, seq FROM records WHERE kind = 'report';
INSERT INTO report_fts (rowid, text)
SELECT s.id, coalesce(json_extract(r.payload, '$.text'), '')
FROM report_search s JOIN records r ON r.box_id = s.box_id AND r.seq = s.seq;

-- Update roll-outs in waves (cloudsync/console/rollout.py).
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    args TEXT NOT NULL,  -- JSON: what the box's update command carries besides the version
    waves TEXT NOT NULL,  -- JSON: cumulative box counts after each wave, e.g. [1, 10, 100]
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'aborted', 'done')),
    wave INTEGER NOT NULL DEFAULT 0,  -- the wave sent last (1-based; 0: none yet)
    wave_sent_at TEXT,
    wave_timeout_s REAL NOT NULL,
    area_path TEXT NOT NULL,  -- the narrowest area holding every box: who may see it
    note TEXT NOT NULL DEFAULT '',  -- why it stopped by itself
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX rollouts_by_area ON rollouts (area_path, created_at);

CREATE TABLE rollout_boxes (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    box_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    sent_at TEXT,
    feed_id INTEGER,
    done_at TEXT,  -- when the box's heartbeat first reported the version
    PRIMARY KEY (rollout_id, box_id)
);
