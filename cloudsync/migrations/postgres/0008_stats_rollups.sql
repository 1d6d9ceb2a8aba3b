-- Daily roll-ups for the ops statistics (issue 20, docs/deploy.md "Statistics at scale").
--
-- A 30-day statistic aggregated every record of the period: 0.4-2.4 s at 10 M rows, and the
-- same for any table size with the same fleet. These tables hold per day the sums the stats
-- endpoints read (cloudsync/storage/rollups.py), kept by a trigger in the upload's own
-- transaction: a duplicate upload (ON CONFLICT DO NOTHING) inserts nothing, so it counts
-- nothing. The endpoints read whole days here and only the partial days at a window's ends
-- from the records themselves.
--
-- Keyed by area, not by box: a network-wide 30-day figure over 10,000 boxes would otherwise
-- still sum 10,000 x 30 x (groups) rows. Each record counts in its box's district (the first
-- two levels of its area path; leaf false): a district reads its own rows, a city or the whole
-- network sums its districts' (a few hundred rows a day for a province). Streets and
-- communities read their few boxes' records (the primary key's box_id). No city and network
-- rows: every upload of the city would update (and lock, until commit) the same rows. Plays
-- and reading also count per box area (normally the community) and day without the content
-- item (leaf true, content_id NULL): the per-community totals of the console and the portal.
-- A box's community and an area's parent never change (no API moves them); if that ever
-- becomes possible, a move must rebuild the box's days.
--
-- day: the first 10 characters of ts, whatever they are. For bounds of at most 10 characters,
-- "day >= b" and "day < b" keep exactly the records "ts >= b" and "ts < b" keep (byte order,
-- COLLATE "C" as records.ts), so a box clock at 1970 or a ts that is no date counts the same
-- here as in the raw query.
--
-- Numbers inside payloads are read with qilu_int/qilu_float, which give NULL for a value that
-- is not a number where a CAST failed the whole query (and would fail the upload here).
--
-- Existing rows are counted after this migration commits, one partition at a time
-- (PostgresStorage.backfill_rollups, run by migrate before serve starts): each partition is
-- locked against inserts (SHARE) only while its own sums are recomputed, so uploads into
-- other months and classes go on. rollup_backfill lists the partitions still to do.

CREATE FUNCTION qilu_int(t TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t ~ '^\s*[-+]?[0-9]{1,18}\s*$' THEN t::bigint END
$$;
CREATE FUNCTION qilu_float(t TEXT) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t ~ '^\s*[-+]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,2})?\s*$'
                THEN t::double precision END
$$;
-- The district of an area path (its first two levels; the path itself when shorter):
-- '/c/d/s/m/' -> '/c/d/', '/c/' -> '/c/'.
CREATE FUNCTION qilu_district(path TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '/' || array_to_string((string_to_array(trim(BOTH '/' FROM path), '/'))[1:2], '/')
           || '/'
$$;

-- Door decisions: GET /api/v1/ops/stats/access.
CREATE TABLE access_daily (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    decision TEXT,
    method TEXT,
    n BIGINT NOT NULL,
    CONSTRAINT access_daily_key UNIQUE NULLS NOT DISTINCT (area, leaf, day, decision, method)
);
-- Proof of play: GET /api/v1/ops/stats/plays and the console's content statistics.
CREATE TABLE play_daily (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    ms BIGINT,  -- sum of duration_ms (NULL: none given)
    CONSTRAINT play_daily_key UNIQUE NULLS NOT DISTINCT (area, leaf, day, content_id)
);
-- Portal reading (reading_stats): GET /api/v1/ops/stats/reading, content statistics.
CREATE TABLE reading_daily (
    area TEXT COLLATE "C" NOT NULL,
    leaf BOOLEAN NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    content_id TEXT,
    n BIGINT NOT NULL,
    reads BIGINT,
    new_readers BIGINT,
    acks BIGINT,
    dwell_s DOUBLE PRECISION,
    CONSTRAINT reading_daily_key UNIQUE NULLS NOT DISTINCT (area, leaf, day, content_id)
);
-- A city's or the network's districts over some days (the key serves one district).
CREATE INDEX access_daily_districts ON access_daily (day, area) WHERE NOT leaf;
CREATE INDEX play_daily_districts ON play_daily (day, area) WHERE NOT leaf;
CREATE INDEX reading_daily_districts ON reading_daily (day, area) WHERE NOT leaf;
-- Per box area (community) within a scope over some days ("by community" figures).
CREATE INDEX play_daily_leaves ON play_daily (day, area) WHERE leaf;
CREATE INDEX reading_daily_leaves ON reading_daily (day, area) WHERE leaf;

-- Once per statement over the rows it inserted (an upload batch is one statement): summed per
-- box, day and group first (a batch's many records of one day become one row), then counted
-- in the box's district (and, for plays and reading, its own area). Rows go in key order so
-- that two uploads of one district lock shared rows in the same order (no deadlock);
-- NULL-safe sums (a + NULL would lose a). cloudsync/storage/rollups.py recount_sql builds
-- these statements (the backfill and retention use it; test_rollups checks they are equal).
CREATE FUNCTION qilu_stats_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 10) AS day, r.payload ->> 'decision' AS decision, r.payload ->> 'method' AS method, count(*) AS n
       FROM added r WHERE r.kind = 'access_event'
    GROUP BY 1, 2, 3, 4)
    INSERT INTO access_daily AS w (area, leaf, day, decision, method, n)
    SELECT l.area, l.leaf, g.day, CASE WHEN l.leaf THEN NULL ELSE g.decision END, CASE WHEN l.leaf THEN NULL ELSE g.method END, sum(g.n)
    FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id
    CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false)) AS l(area, leaf)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT access_daily_key DO UPDATE SET n = w.n + excluded.n;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 10) AS day, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'duration_ms')) AS ms
       FROM added r WHERE r.kind = 'play_record'
    GROUP BY 1, 2, 3)
    INSERT INTO play_daily AS w (area, leaf, day, content_id, n, ms)
    SELECT l.area, l.leaf, g.day, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.ms)
    FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id
    CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf)
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT play_daily_key DO UPDATE SET n = w.n + excluded.n,
        ms = CASE WHEN w.ms IS NULL THEN excluded.ms ELSE w.ms + coalesce(excluded.ms, 0) END;

    WITH g AS (SELECT r.box_id, substr(r.ts, 1, 10) AS day, r.payload ->> 'content_id' AS content_id, count(*) AS n, sum(qilu_int(r.payload ->> 'reads')) AS reads, sum(qilu_int(r.payload ->> 'new_readers')) AS new_readers, sum(qilu_int(r.payload ->> 'acks')) AS acks, sum(qilu_float(r.payload ->> 'dwell_s')) AS dwell_s
       FROM added r WHERE r.kind = 'reading_stats'
    GROUP BY 1, 2, 3)
    INSERT INTO reading_daily AS w (area, leaf, day, content_id, n, reads, new_readers, acks, dwell_s)
    SELECT l.area, l.leaf, g.day, CASE WHEN l.leaf THEN NULL ELSE g.content_id END, sum(g.n), sum(g.reads), sum(g.new_readers), sum(g.acks), sum(g.dwell_s)
    FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id
    CROSS JOIN LATERAL (VALUES (qilu_district(a.path), false), (a.path, true)) AS l(area, leaf)
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT reading_daily_key DO UPDATE SET n = w.n + excluded.n,
        reads = CASE WHEN w.reads IS NULL THEN excluded.reads ELSE w.reads + coalesce(excluded.reads, 0) END,
        new_readers = CASE WHEN w.new_readers IS NULL THEN excluded.new_readers ELSE w.new_readers + coalesce(excluded.new_readers, 0) END,
        acks = CASE WHEN w.acks IS NULL THEN excluded.acks ELSE w.acks + coalesce(excluded.acks, 0) END,
        dwell_s = CASE WHEN w.dwell_s IS NULL THEN excluded.dwell_s ELSE w.dwell_s + coalesce(excluded.dwell_s, 0) END;
    RETURN NULL;
END
$$;
CREATE TRIGGER records_stats_rollup AFTER INSERT ON records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION qilu_stats_rollup();

-- The partitions whose rows are still to be counted (all of the three classes' partitions
-- that exist now; months created later count from their first row).
CREATE TABLE rollup_backfill (
    part TEXT PRIMARY KEY,
    done_at TEXT,
    rows BIGINT,
    seconds DOUBLE PRECISION
);
INSERT INTO rollup_backfill (part)
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('records_access'::regclass, 'records_play'::regclass,
                      'records_telemetry'::regclass);

-- Lists filtered by a payload field (GET /api/v1/ops/reports?category=..., alerts?level=...,
-- tickets?status=...) walk that field's index newest first, month by month: with only the
-- (kind, ts) index a value that is rare or absent read every report ever stored (1.8 s at
-- 400,000 reports, bench/stats100m.py). On the small classes' tables only (reports and
-- alerts are ~2 % of the records): building them reads those, holding their inserts.
CREATE INDEX records_report_by_category ON records_report
    ((payload ->> 'category'), ts, box_id, seq) WHERE kind = 'report';
CREATE INDEX records_report_by_urgency ON records_report
    ((payload ->> 'urgency'), ts, box_id, seq) WHERE kind = 'report';
CREATE INDEX records_report_by_status ON records_report
    ((payload ->> 'status'), ts, box_id, seq) WHERE kind = 'report';
CREATE INDEX records_ticket_by_status ON records_report
    ((payload ->> 'status'), ts, box_id, seq) WHERE kind = 'repair_ticket';
CREATE INDEX records_ticket_by_urgency ON records_report
    ((payload ->> 'urgency'), ts, box_id, seq) WHERE kind = 'repair_ticket';
CREATE INDEX records_alert_by_level ON records_alert ((payload ->> 'level'), ts, box_id, seq);
CREATE INDEX records_alert_by_type ON records_alert ((payload ->> 'type'), ts, box_id, seq);
