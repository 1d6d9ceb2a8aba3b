-- Records partitioned by time (issue 20, docs/deploy.md "Partitions and retention").
--
-- Two levels: by record class (LIST on kind, the box's outbox classes: alert, access, report,
-- play, telemetry; any other kind goes to "other"), then each class by month (RANGE on ts,
-- the time the box stamped on the record). Retention is per class, so a class's old months
-- are dropped whole (cloudsync/retention.py) instead of deleted row by row.
--
-- ts is partitioned as text: ISO 8601 UTC, so months sort as text. The column is COLLATE "C"
-- so that bounds, indexes and the ops queries' comparisons all use byte order (the cluster's
-- locale could order punctuation differently, and pruning needs the query's collation to be
-- the partition key's).
--
-- The unique key must hold the partition columns: (box_id, seq, kind, ts). A resent record
-- carries the same kind and ts as the first copy (the box's outbox row never changes), so it
-- lands in the same partition and ON CONFLICT DO NOTHING still drops it.
--
-- A DEFAULT partition per class takes any ts without a month (a box clock at 1970, a year
-- ahead, or text that is no date): ingest never fails for want of a partition. The
-- maintenance task creates months ahead (retention.months_ahead), moving any early
-- arrivals out of the default partition first.
--
-- Existing rows are copied across in this migration, with the records table locked (serve
-- migrates before its workers start): 44 s per million rows measured on 2 busy shared cores
-- (bench/partitions.py, 10 million rows in 7.4 minutes); plan the upgrade window by it.

ALTER TABLE records RENAME TO records_flat;
ALTER INDEX records_pkey RENAME TO records_flat_pkey;
ALTER INDEX records_by_kind RENAME TO records_flat_by_kind;
ALTER INDEX records_by_arrival RENAME TO records_flat_by_arrival;

CREATE TABLE records (
    box_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    ts TEXT COLLATE "C" NOT NULL,
    payload JSONB NOT NULL,
    received_at TEXT NOT NULL
) PARTITION BY LIST (kind);

-- Keep these lists equal to cloudsync/retention.py CLASSES (tests/cloudsync/test_partitions.py).
CREATE TABLE records_alert PARTITION OF records
    FOR VALUES IN ('alert') PARTITION BY RANGE (ts);
CREATE TABLE records_access PARTITION OF records
    FOR VALUES IN ('access_event', 'intercom_call') PARTITION BY RANGE (ts);
CREATE TABLE records_report PARTITION OF records
    FOR VALUES IN ('report', 'report_correction', 'repair_ticket', 'community_event', 'board_post')
    PARTITION BY RANGE (ts);
CREATE TABLE records_play PARTITION OF records
    FOR VALUES IN ('play_record') PARTITION BY RANGE (ts);
CREATE TABLE records_telemetry PARTITION OF records
    FOR VALUES IN ('device_health', 'reading_stats') PARTITION BY RANGE (ts);
CREATE TABLE records_other PARTITION OF records DEFAULT PARTITION BY RANGE (ts);

CREATE TABLE records_alert_default PARTITION OF records_alert DEFAULT;
CREATE TABLE records_access_default PARTITION OF records_access DEFAULT;
CREATE TABLE records_report_default PARTITION OF records_report DEFAULT;
CREATE TABLE records_play_default PARTITION OF records_play DEFAULT;
CREATE TABLE records_telemetry_default PARTITION OF records_telemetry DEFAULT;
CREATE TABLE records_other_default PARTITION OF records_other DEFAULT;

-- Months for the rows already stored (at most ten years back: older ones go to the default
-- partitions), else from last month (a record stamped on the 31st arrives on the 1st), through
-- three months ahead. Partition records_<class>_pYYYYMM holds ts from
-- 'YYYY-MM' up to the next month.
DO $$
DECLARE
    cls TEXT;
    lo DATE;
    m DATE;
    top DATE := date_trunc('month', now() AT TIME ZONE 'UTC')::date + 3 * interval '1 month';
BEGIN
    FOR cls, lo IN
        SELECT p.relname, min(substr(f.ts, 1, 7) || '-01')::date
        FROM records_flat f
        JOIN pg_class p ON p.relname = CASE
            WHEN f.kind = 'alert' THEN 'records_alert'
            WHEN f.kind IN ('access_event', 'intercom_call') THEN 'records_access'
            WHEN f.kind IN ('report', 'report_correction', 'repair_ticket', 'community_event',
                            'board_post') THEN 'records_report'
            WHEN f.kind = 'play_record' THEN 'records_play'
            WHEN f.kind IN ('device_health', 'reading_stats') THEN 'records_telemetry'
            ELSE 'records_other' END
        WHERE f.ts ~ '^[0-9]{4}-(0[1-9]|1[0-2])-'
            AND f.ts >= to_char(now() - interval '10 years', 'YYYY-MM')
            AND f.ts < to_char(top, 'YYYY-MM')
        GROUP BY p.relname
        UNION ALL
        SELECT c, (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date
        FROM unnest(ARRAY['records_alert', 'records_access', 'records_report', 'records_play',
                          'records_telemetry', 'records_other']) AS c
    LOOP
        m := lo;
        WHILE m < top LOOP
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                cls || '_p' || to_char(m, 'YYYYMM'), cls,
                to_char(m, 'YYYY-MM'), to_char(m + interval '1 month', 'YYYY-MM'));
            m := m + interval '1 month';
        END LOOP;
    END LOOP;
END $$;

INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at)
SELECT box_id, seq, priority, kind, record_id, ts, payload, received_at FROM records_flat;
DROP TABLE records_flat;

-- Indexes after the copy (one sort per partition rather than row-by-row inserts).
ALTER TABLE records ADD PRIMARY KEY (box_id, seq, kind, ts);
CREATE INDEX records_by_kind ON records (kind, ts);
CREATE INDEX records_by_arrival ON records (kind, received_at);
ANALYZE records;
