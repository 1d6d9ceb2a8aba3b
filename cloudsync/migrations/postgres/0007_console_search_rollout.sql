-- Console, second slice (docs/console.md): report search by index, a weekly report roll-up for
-- the charts, and update roll-outs in waves.

-- Report search: the overlapping character pairs of a report's text. Chinese has no spaces
-- to split words at, and most Chinese words are two characters: pairs find any substring of
-- two or more characters without a tokenizer (pg_trgm's trigrams miss two-character words
-- and treat CJK as separators under the C locale). A query needs every pair of its term; the
-- LIKE beside it keeps only true substrings.
CREATE FUNCTION qilu_bigrams(t TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(t, i, 2)), '{}')
    FROM generate_series(1, greatest(length(t) - 1, 1)) AS i
    WHERE t IS NOT NULL AND t <> ''
$$;
CREATE INDEX records_report_text ON records USING gin (qilu_bigrams(payload ->> 'text'))
    WHERE kind = 'report';
-- A search term may be a report's id; ticket history and corrections look records up by
-- id too. Without this, each of those read every record of the kind.
CREATE INDEX records_by_record_id ON records (kind, record_id);
-- A search reads the newest reports in scope first (cloudsync/storage/queries.py): walking
-- this backwards finds a district's newest 2,000 without reading each record's row (the
-- (kind, ts) index made it fetch the rows of every district's reports to test their box).
CREATE INDEX records_report_recent ON records (ts, box_id, seq) WHERE kind = 'report';

-- Weekly report roll-up, kept by a trigger as reports arrive (a duplicate upload inserts
-- nothing, so it counts nothing). The charts read ~100x fewer rows than the reports.
-- week: the Monday of the report's own day (payload ts; the arrival day when that is not a
-- date); category '' when the report had none.
CREATE TABLE report_weekly (
    week TEXT NOT NULL,
    box_id TEXT NOT NULL,
    category TEXT NOT NULL,
    n BIGINT NOT NULL,
    mood_sum DOUBLE PRECISION NOT NULL,  -- sum of numeric sentiments
    mood_n BIGINT NOT NULL,  -- how many reports had one
    PRIMARY KEY (week, box_id, category)
);
-- A district's charts: its boxes' weeks (the key serves the whole network's).
CREATE INDEX report_weekly_by_box ON report_weekly (box_id, week);

-- Never raises (a bad date would fail the box's whole upload): a text that does not start
-- with a plausible date falls back to the arrival time, which the cloud writes itself.
CREATE FUNCTION qilu_week(ts TEXT, fallback TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(d - (extract(isodow FROM d)::int - 1), 'YYYY-MM-DD') FROM (
        SELECT make_date(substr(x, 1, 4)::int, substr(x, 6, 2)::int, 1)
               + (substr(x, 9, 2)::int - 1) AS d
        FROM (SELECT CASE WHEN ts ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
                          THEN ts ELSE fallback END AS x) AS pick
    ) AS day
$$;

-- Once per statement over the rows it inserted (a transition table): an upload batch is one
-- grouped upsert, not one per report. (Row by row, a batch's reports of one week and category
-- updated the same roll-up row again and again: 13x slower ingest in bench/console.py.)
CREATE FUNCTION qilu_report_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_weekly AS w (week, box_id, category, n, mood_sum, mood_n)
    SELECT qilu_week(payload ->> 'ts', received_at), box_id, coalesce(payload ->> 'category', ''),
           count(*),
           coalesce(sum(CASE WHEN jsonb_typeof(payload -> 'sentiment') = 'number'
                             THEN (payload ->> 'sentiment')::double precision END), 0),
           count(*) FILTER (WHERE jsonb_typeof(payload -> 'sentiment') = 'number')
    FROM added WHERE kind = 'report' GROUP BY 1, 2, 3
    ON CONFLICT (week, box_id, category) DO UPDATE SET n = w.n + excluded.n,
        mood_sum = w.mood_sum + excluded.mood_sum, mood_n = w.mood_n + excluded.mood_n;
    RETURN NULL;
END
$$;
CREATE TRIGGER records_report_rollup AFTER INSERT ON records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION qilu_report_rollup();

INSERT INTO report_weekly (week, box_id, category, n, mood_sum, mood_n)
SELECT qilu_week(payload ->> 'ts', received_at), box_id, coalesce(payload ->> 'category', ''),
       count(*),
       coalesce(sum(CASE WHEN jsonb_typeof(payload -> 'sentiment') = 'number'
                         THEN (payload ->> 'sentiment')::double precision END), 0),
       count(*) FILTER (WHERE jsonb_typeof(payload -> 'sentiment') = 'number')
FROM records WHERE kind = 'report' GROUP BY 1, 2, 3;

-- Update roll-outs in waves (cloudsync/console/rollout.py).
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    args JSONB NOT NULL,  -- what the box's update command carries besides the version
    waves JSONB NOT NULL,  -- cumulative box counts after each wave, e.g. [1, 10, 100]
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'aborted', 'done')),
    wave INTEGER NOT NULL DEFAULT 0,  -- the wave sent last (1-based; 0: none yet)
    wave_sent_at TEXT,
    wave_timeout_s DOUBLE PRECISION NOT NULL,
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
    feed_id BIGINT,
    done_at TEXT,  -- when the box's heartbeat first reported the version
    PRIMARY KEY (rollout_id, box_id)
);
