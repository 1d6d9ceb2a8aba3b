-- Issue 20, fourth step (docs/deploy.md "Urgent open reports, per-community hours kept").
--
-- 1. The reports list filtered by urgency *and* status (the network admin's "urgent and open
-- reports", GET /api/v1/ops/reports?urgency=immediate&status=received) took 216 ms p95 at
-- 10 M records: PostgreSQL read every matching report of every month (~50,000) and sorted
-- them for a page of 50. Its estimate was ~1 row per month: the expressions payload ->>
-- 'urgency' / 'status' had statistics only through migration 0008's *partial* indexes (WHERE
-- kind = 'report'), which the planner never uses for estimates, so it took the default 0.5 %
-- for each and multiplied them. This index is not partial (kind is its first column
-- instead), so ANALYZE keeps its expressions' statistics and the planner uses them (also
-- for any other filter on urgency or status, tickets' too); and it holds both fields before
-- ts, so each month is walked newest first under both conditions and a Merge Append stops
-- at the page: ~1-2 ms. Building it holds the report class's inserts for its duration
-- (~1 s at 150,000 reports).
CREATE INDEX records_report_by_urgency_status ON records_report
    (kind, (payload ->> 'urgency'), (payload ->> 'status'), ts, box_id, seq);
-- The months already stored were analysed before these expressions were indexed, and a
-- month that no longer changes is never analysed again by autovacuum: now, once (a sample
-- of each partition, seconds).
ANALYZE records_report;

-- 2. Per-community 10-hour blocks and hours (0010: play_/reading_tenhour, _leaf_hourly) were
-- never deleted, ~3.2 GB of 10 M records. Retention now deletes those before
-- CommunityHours.keep_days (cloudsync/retention.py). read_from is the first day whose hours
-- the statistics read: before it they read the records (storage/rollups.py hours_kept).
-- Retention moves read_from first and deletes rows before it only grace_s after ``since``,
-- so no worker still reading with the day before (each re-reads it every 30 s) misses any.
CREATE TABLE community_hours_horizon (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    read_from TEXT COLLATE "C" NOT NULL,
    since TIMESTAMPTZ NOT NULL
);
INSERT INTO community_hours_horizon (read_from, since) VALUES ('', '-infinity');
