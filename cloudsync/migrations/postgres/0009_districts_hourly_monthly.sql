-- Issue 20, second step (docs/deploy.md "Statistics and lists at scale"): records of the
-- listed classes carry their box's district, and hourly roll-ups for the ends of windows.
--
-- 1. records.district: the district path (qilu_district of the box's area path, as the
-- roll-ups' areas) stamped at upload on the records the ops lists read (the report and alert
-- classes; NULL on every other class, which no list reads). A city's list then asks for
-- "district = ANY(its ~10 districts)", a district for one: with the city's 5,000 box ids in
-- "box_id = ANY(...)" PostgreSQL spent 0.3-0.6 s planning each list (per month partition's
-- statistics; executing took ~6 ms). Streets and communities keep their few boxes' ids.
-- A record keeps the district its box was in when it was stored: a box moved to another
-- district (no API does that today) lists its earlier records under the old one, as the
-- roll-ups count them. The column is added without a default (no rewrite); rows stored
-- before are filled in after this migration, one partition per transaction, by an UPDATE
-- that holds no insert (PostgresStorage.migrate, rollups.backfill, listed in backfill_0009).
-- The lists' indexes are built here, before the fill: their classes are ~2 % of the rows
-- (their inserts wait for the build); the fill then writes a second version of those rows,
-- which autovacuum reclaims.
--
-- 2. Hourly roll-ups (access_hourly, play_hourly, reading_hourly): the same sums as the
-- daily tables per district and hour (ts[:13]), no per-community rows. A window's partial
-- first and last day were read from the records (a network's 30-day plays: ~60 % of the
-- query); now their whole hours come from here and only the minutes at the ends from the
-- records (rollups.split_hours). Kept by the same statement trigger, one pass over an upload's
-- records per kind for both tables (rollups.trigger_sql builds the body; a test compares).
-- Existing rows are counted into the hourly and monthly tables after this migration like
-- 0008's (SHARE lock per partition).

ALTER TABLE records ADD COLUMN district TEXT COLLATE "C";
CREATE INDEX records_report_by_district ON records_report (district, kind, ts, box_id, seq);
CREATE INDEX records_alert_by_district ON records_alert (district, ts, box_id, seq);

CREATE TABLE access_hourly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,  -- always false (kept for the daily tables' shape)
    hour TEXT COLLATE "C" NOT NULL,
    decision TEXT,
    method TEXT,
    n BIGINT NOT NULL,
    CONSTRAINT access_hourly_key UNIQUE NULLS NOT DISTINCT (area, leaf, hour, decision, method)
);
CREATE TABLE play_hourly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    hour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    ms BIGINT,
    CONSTRAINT play_hourly_key UNIQUE NULLS NOT DISTINCT (area, leaf, hour, content_id)
);
CREATE TABLE reading_hourly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    hour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_hourly_key UNIQUE NULLS NOT DISTINCT (area, leaf, hour, content_id)
);
-- 3. Per-community totals per month (play_monthly, reading_monthly; leaf rows only, no content
-- item): the console's content statistics and the portal's reading by community summed one
-- row per community and day (300,000 rows for a network's 30 days); now the whole months of a
-- window come from here (rollups.split_months), the rest of its days from the daily leaf rows.
CREATE TABLE play_monthly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,  -- always true
    month TEXT COLLATE "C" NOT NULL,  -- ts[:7]
    content_id TEXT,  -- always NULL
    n BIGINT NOT NULL,
    ms BIGINT,
    CONSTRAINT play_monthly_key UNIQUE NULLS NOT DISTINCT (area, leaf, month, content_id)
);
CREATE TABLE reading_monthly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    month TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_monthly_key UNIQUE NULLS NOT DISTINCT (area, leaf, month, content_id)
);
CREATE INDEX play_monthly_months ON play_monthly (month, area);
CREATE INDEX reading_monthly_months ON reading_monthly (month, area);

-- A city's or the network's districts over some hours (the key serves one district).
CREATE INDEX access_hourly_districts ON access_hourly (hour, area);
CREATE INDEX play_hourly_districts ON play_hourly (hour, area);
CREATE INDEX reading_hourly_districts ON reading_hourly (hour, area);

-- Each kind's upload rows summed once per box, hour and group (g), then added per district and
-- hour (hourly), per district and day and per box area and day (daily), and per box area and
-- month (monthly), in key order. rollups.trigger_sql builds this body (test_rollups compares).
CREATE OR REPLACE FUNCTION qilu_stats_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'decision' AS decision, r.payload ->> 'method' AS method, count(*) AS n FROM added r WHERE r.kind = 'access_event' GROUP BY 1, 2, 3, 4), i0 AS (INSERT INTO access_hourly AS w (area, leaf, hour, decision, method, n) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.decision END, CASE WHEN l.leaf THEN NULL ELSE g.method END, sum(g.n) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ON CONSTRAINT access_hourly_key DO UPDATE SET n = w.n + excluded.n) INSERT INTO access_daily AS w (area, leaf, day, decision, method, n) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.decision END, CASE WHEN l.leaf THEN NULL ELSE g.method END, sum(g.n) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ON CONSTRAINT access_daily_key DO UPDATE SET n = w.n + excluded.n;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'duration_ms')) AS ms FROM added r WHERE r.kind = 'play_record' GROUP BY 1, 2, 3), i0 AS (INSERT INTO play_hourly AS w (area, leaf, hour, content_id, n, ms) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_hourly_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END), i1 AS (INSERT INTO play_daily AS w (area, leaf, day, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_daily_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END) INSERT INTO play_monthly AS w (area, leaf, month, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 7), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_monthly_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'reads')) AS reads, sum(qilu_int(r.payload ->> 'new_readers')) AS new_readers, sum(qilu_int(r.payload ->> 'acks')) AS acks, sum(qilu_float(r.payload ->> 'dwell_s')) AS dwell_s FROM added r WHERE r.kind = 'reading_stats' GROUP BY 1, 2, 3), i0 AS (INSERT INTO reading_hourly AS w (area, leaf, hour, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_hourly_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END), i1 AS (INSERT INTO reading_daily AS w (area, leaf, day, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_daily_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END) INSERT INTO reading_monthly AS w (area, leaf, month, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 7), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_monthly_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END;
    RETURN NULL;
END
$$;

-- The partitions whose rows are still to be counted into the hourly and monthly tables
-- (access, play, telemetry) or to get their district (report, alert): those that exist now.
CREATE TABLE backfill_0009 (
    part TEXT PRIMARY KEY,
    done_at TEXT,
    rows BIGINT,
    seconds DOUBLE PRECISION
);
INSERT INTO backfill_0009 (part)
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('records_access'::regclass, 'records_play'::regclass,
                      'records_telemetry'::regclass, 'records_report'::regclass,
                      'records_alert'::regclass);
