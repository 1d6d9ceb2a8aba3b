-- Issue 20, third step (docs/deploy.md "Per-community tables, the month before, open critical
-- alerts"): what stayed above 200 ms at 20 M rows.
--
-- 1. 10-day blocks (play_tenday, reading_tenday): the daily sums per ts[:9] ("2026-11-0" holds
-- the 1st-9th, "-1" the 10th-19th, "-2" the 20th-29th, "-3" the 30th-31st), per district with
-- the content item and per community (leaf). A window reads its whole blocks here and only the
-- days at its ends from the daily tables (rollups.split_levels): the network's plays "the
-- month before" summed 29 days x 20 districts x 300 items, now ~10 days and 2 blocks. Exact as
-- the other roll-ups: a bound of at most 9 characters compares with ts[:9] as with ts.
--
-- 2. Per-community 10-hour blocks and hours (play_tenhour, reading_tenhour: ts[:12], "T0" the
-- hours 00-09, "T1" 10-19, "T2" 20-23; play_leaf_hourly, reading_leaf_hourly: ts[:13]; leaf
-- rows only, content_id NULL): the partial first day of a per-community figure (the console's
-- content statistics, portal reading by community) came from the records, ~15,000 plays
-- joined to their communities for the network; now its whole hours and 10-hour blocks come
-- from here and only the minutes before the first whole hour from the records. With the
-- months (0009) a per-community window reads a handful of rows per community, not one per day.
-- An upload batch comes from one box, so these are one or two rows per batch and level.
--
-- 3. Open critical alerts per box and month of the alert's ts (alert_counts): the console
-- overview counted them by reading every critical alert ever stored (and its acknowledgement).
-- Kept in the transaction that changes them: the upload trigger adds stored critical alerts
-- not closed; a row trigger on alert_acks moves a critical alert's count when its state moves
-- into or out of "closed" (OLD and NEW are the row versions that statement replaced, so two
-- acknowledgements racing count once each); retention removes a dropped month's rows
-- (rollups.forget_month) and subtracts purged rows (forget_rows). Per month, so that a
-- partition can be recounted or dropped alone. Rows at zero are deleted.
--
-- Existing rows are counted after this migration commits, one partition per transaction
-- (backfill_0010, rollups.backfill, run by migrate before serve starts): each play and
-- telemetry partition is locked against inserts (SHARE) while its blocks and hours are
-- counted, as 0008 and 0009 did; each alert partition (~0.5 % of the rows) also holds
-- acknowledgements (SHARE on alert_acks) for the moment it is counted.

CREATE TABLE play_tenday (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    tenday TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    ms BIGINT,
    CONSTRAINT play_tenday_key UNIQUE NULLS NOT DISTINCT (area, leaf, tenday, content_id)
);
CREATE TABLE reading_tenday (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    tenday TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_tenday_key UNIQUE NULLS NOT DISTINCT (area, leaf, tenday, content_id)
);
CREATE TABLE play_tenhour (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,  -- always true
    tenhour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    ms BIGINT,
    CONSTRAINT play_tenhour_key UNIQUE NULLS NOT DISTINCT (area, leaf, tenhour, content_id)
);
CREATE TABLE reading_tenhour (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    tenhour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_tenhour_key UNIQUE NULLS NOT DISTINCT (area, leaf, tenhour, content_id)
);
CREATE TABLE play_leaf_hourly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,  -- always true
    hour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    ms BIGINT,
    CONSTRAINT play_leaf_hourly_key UNIQUE NULLS NOT DISTINCT (area, leaf, hour, content_id)
);
CREATE TABLE reading_leaf_hourly (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    hour TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_leaf_hourly_key UNIQUE NULLS NOT DISTINCT (area, leaf, hour, content_id)
);
-- A city's or the network's districts over some blocks (the key serves one district), and the
-- communities within a scope over some blocks or hours.
CREATE INDEX play_tenday_districts ON play_tenday (tenday, area) WHERE NOT leaf;
CREATE INDEX reading_tenday_districts ON reading_tenday (tenday, area) WHERE NOT leaf;
CREATE INDEX play_tenday_leaves ON play_tenday (tenday, area) WHERE leaf;
CREATE INDEX reading_tenday_leaves ON reading_tenday (tenday, area) WHERE leaf;
CREATE INDEX play_tenhour_leaves ON play_tenhour (tenhour, area);
CREATE INDEX reading_tenhour_leaves ON reading_tenhour (tenhour, area);
CREATE INDEX play_leaf_hourly_leaves ON play_leaf_hourly (hour, area);
CREATE INDEX reading_leaf_hourly_leaves ON reading_leaf_hourly (hour, area);

CREATE TABLE alert_counts (
    box_id TEXT NOT NULL,
    month TEXT COLLATE "C" NOT NULL,  -- ts[:7] of the alerts
    n BIGINT NOT NULL,  -- critical alerts of the box in that month not closed
    PRIMARY KEY (box_id, month)
);

-- The upload trigger as in 0009, plus the new tables' upserts (in key order) and the alerts.
-- rollups.trigger_sql builds this body (test_rollups compares).
CREATE OR REPLACE FUNCTION qilu_stats_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'decision' AS decision, r.payload ->> 'method' AS method, count(*) AS n FROM added r WHERE r.kind = 'access_event' GROUP BY 1, 2, 3, 4), i0 AS (INSERT INTO access_hourly AS w (area, leaf, hour, decision, method, n) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.decision END, CASE WHEN l.leaf THEN NULL ELSE g.method END, sum(g.n) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ON CONSTRAINT access_hourly_key DO UPDATE SET n = w.n + excluded.n) INSERT INTO access_daily AS w (area, leaf, day, decision, method, n) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.decision END, CASE WHEN l.leaf THEN NULL ELSE g.method END, sum(g.n) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ON CONSTRAINT access_daily_key DO UPDATE SET n = w.n + excluded.n;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'duration_ms')) AS ms FROM added r WHERE r.kind = 'play_record' GROUP BY 1, 2, 3), i0 AS (INSERT INTO play_hourly AS w (area, leaf, hour, content_id, n, ms) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_hourly_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END), i1 AS (INSERT INTO play_daily AS w (area, leaf, day, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_daily_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END), i2 AS (INSERT INTO play_monthly AS w (area, leaf, month, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 7), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_monthly_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END), i3 AS (INSERT INTO play_tenday AS w (area, leaf, tenday, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 9), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_tenday_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END), i4 AS (INSERT INTO play_tenhour AS w (area, leaf, tenhour, content_id, n, ms) SELECT l.area, l.leaf, substr(g.hour, 1, 12), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_tenhour_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END) INSERT INTO play_leaf_hourly AS w (area, leaf, hour, content_id, n, ms) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT play_leaf_hourly_key DO UPDATE SET n = w.n + excluded.n, ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 13) AS hour, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'reads')) AS reads, sum(qilu_int(r.payload ->> 'new_readers')) AS new_readers, sum(qilu_int(r.payload ->> 'acks')) AS acks, sum(qilu_float(r.payload ->> 'dwell_s')) AS dwell_s FROM added r WHERE r.kind = 'reading_stats' GROUP BY 1, 2, 3), i0 AS (INSERT INTO reading_hourly AS w (area, leaf, hour, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_hourly_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END), i1 AS (INSERT INTO reading_daily AS w (area, leaf, day, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 10), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_daily_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END), i2 AS (INSERT INTO reading_monthly AS w (area, leaf, month, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 7), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_monthly_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END), i3 AS (INSERT INTO reading_tenday AS w (area, leaf, tenday, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 9), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_tenday_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END), i4 AS (INSERT INTO reading_tenhour AS w (area, leaf, tenhour, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, substr(g.hour, 1, 12), CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_tenhour_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END) INSERT INTO reading_leaf_hourly AS w (area, leaf, hour, content_id, n, reads, new_readers, acks, dwell_s) SELECT l.area, l.leaf, g.hour, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s) FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id CROSS JOIN LATERAL (VALUES (a.path, true)) AS l(area, leaf) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 ON CONFLICT ON CONSTRAINT reading_leaf_hourly_key DO UPDATE SET n = w.n + excluded.n, reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END, new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END, acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END, dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END;

    INSERT INTO alert_counts AS w (box_id, month, n) SELECT r.box_id, substr(r.ts, 1, 7), count(*) FROM added r LEFT JOIN alert_acks k ON k.box_id = r.box_id AND k.seq = r.seq WHERE r.kind = 'alert' AND r.payload ->> 'level' = 'critical' AND (k.state IS NULL OR k.state <> 'closed') GROUP BY 1, 2 ORDER BY 1, 2 ON CONFLICT (box_id, month) DO UPDATE SET n = w.n + excluded.n;
    RETURN NULL;
END
$$;

-- An acknowledgement's state moving into or out of "closed" moves its critical alert's count.
CREATE FUNCTION qilu_alert_ack_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_open BOOLEAN := TG_OP = 'INSERT' OR OLD.state <> 'closed';
    now_open BOOLEAN := TG_OP = 'DELETE' OR NEW.state <> 'closed';
    k_box TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.box_id ELSE NEW.box_id END;
    k_seq BIGINT := CASE WHEN TG_OP = 'DELETE' THEN OLD.seq ELSE NEW.seq END;
    m TEXT;
BEGIN
    IF was_open = now_open THEN
        RETURN NULL;
    END IF;
    SELECT substr(r.ts, 1, 7) INTO m FROM records r
    WHERE r.kind = 'alert' AND r.box_id = k_box AND r.seq = k_seq
      AND r.payload ->> 'level' = 'critical' LIMIT 1;
    IF m IS NULL THEN  -- not critical, or its month is gone
        RETURN NULL;
    END IF;
    INSERT INTO alert_counts AS w (box_id, month, n)
    VALUES (k_box, m, CASE WHEN now_open THEN 1 ELSE -1 END)
    ON CONFLICT (box_id, month) DO UPDATE SET n = w.n + excluded.n;
    DELETE FROM alert_counts WHERE box_id = k_box AND month = m AND n = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_acks_count AFTER INSERT OR UPDATE OF state OR DELETE ON alert_acks
    FOR EACH ROW EXECUTE FUNCTION qilu_alert_ack_count();

-- The partitions whose rows are still to be counted (play, telemetry, alert): those that
-- exist now; months created later count from their first row.
CREATE TABLE backfill_0010 (
    part TEXT PRIMARY KEY,
    done_at TEXT,
    rows BIGINT,
    seconds DOUBLE PRECISION
);
INSERT INTO backfill_0010 (part)
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('records_play'::regclass, 'records_telemetry'::regclass,
                      'records_alert'::regclass);
