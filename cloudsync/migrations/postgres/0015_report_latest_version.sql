-- A report counts once, as its newest record (probe 12). A box sends a report again, whole,
-- on every change (its status, a staff correction: edge/reports/store.py), with the same
-- record id and a new seq; the weekly roll-up (0007) counted every one of those records, so
-- a report answered and closed counted twice, also under a category corrected away.
--
-- Now each insert statement moves each report it touched from the record that counted
-- before (the newest one stored before the statement) to the newest one stored now, when
-- that one is new: +1 for the new record's week and category, -1 for the old one's. A
-- record older than one already stored (arriving late) changes nothing. The charts leave
-- out cells that come to 0. As before, reports deleted by retention stay counted (a report
-- changed after its older records' month was dropped counts its new record as well).
CREATE OR REPLACE FUNCTION qilu_report_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH keys AS (
        SELECT DISTINCT box_id, record_id FROM added WHERE kind = 'report'
    ), moved AS (
        SELECT k.box_id, t.payload AS t_payload, t.received_at AS t_received,
               p.payload AS p_payload, p.received_at AS p_received
        FROM keys k
        CROSS JOIN LATERAL (
            SELECT r.seq, r.payload, r.received_at FROM records r
            WHERE r.kind = 'report' AND r.box_id = k.box_id AND r.record_id = k.record_id
            ORDER BY r.seq DESC LIMIT 1) t
        LEFT JOIN LATERAL (
            SELECT r.seq, r.payload, r.received_at FROM records r
            WHERE r.kind = 'report' AND r.box_id = k.box_id AND r.record_id = k.record_id
              AND NOT EXISTS (SELECT 1 FROM added a WHERE a.box_id = r.box_id AND a.seq = r.seq)
            ORDER BY r.seq DESC LIMIT 1) p ON true
        WHERE p.seq IS NULL OR t.seq > p.seq
    ), deltas AS (
        SELECT qilu_week(t_payload ->> 'ts', t_received) AS week, box_id,
               coalesce(t_payload ->> 'category', '') AS category, 1 AS n,
               CASE WHEN jsonb_typeof(t_payload -> 'sentiment') = 'number'
                    THEN (t_payload ->> 'sentiment')::double precision ELSE 0 END AS mood_sum,
               CASE WHEN jsonb_typeof(t_payload -> 'sentiment') = 'number' THEN 1 ELSE 0 END
                   AS mood_n
        FROM moved
        UNION ALL
        SELECT qilu_week(p_payload ->> 'ts', p_received), box_id,
               coalesce(p_payload ->> 'category', ''), -1,
               CASE WHEN jsonb_typeof(p_payload -> 'sentiment') = 'number'
                    THEN -(p_payload ->> 'sentiment')::double precision ELSE 0 END,
               CASE WHEN jsonb_typeof(p_payload -> 'sentiment') = 'number' THEN -1 ELSE 0 END
        FROM moved WHERE p_payload IS NOT NULL
    )
    INSERT INTO report_weekly AS w (week, box_id, category, n, mood_sum, mood_n)
    SELECT week, box_id, category, sum(n), sum(mood_sum), sum(mood_n)
    FROM deltas GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (week, box_id, category) DO UPDATE SET n = w.n + excluded.n,
        mood_sum = w.mood_sum + excluded.mood_sum, mood_n = w.mood_n + excluded.mood_n;
    RETURN NULL;
END
$$;

-- The records already counted that a newer record of their report replaced: taken away.
INSERT INTO report_weekly AS w (week, box_id, category, n, mood_sum, mood_n)
SELECT qilu_week(payload ->> 'ts', received_at), box_id, coalesce(payload ->> 'category', ''),
       -count(*),
       -coalesce(sum(CASE WHEN jsonb_typeof(payload -> 'sentiment') = 'number'
                          THEN (payload ->> 'sentiment')::double precision END), 0),
       -count(*) FILTER (WHERE jsonb_typeof(payload -> 'sentiment') = 'number')
FROM records r WHERE kind = 'report' AND EXISTS (
    SELECT 1 FROM records n WHERE n.kind = 'report' AND n.box_id = r.box_id
    AND n.record_id = r.record_id AND n.seq > r.seq)
GROUP BY 1, 2, 3
ON CONFLICT (week, box_id, category) DO UPDATE SET n = w.n + excluded.n,
    mood_sum = w.mood_sum + excluded.mood_sum, mood_n = w.mood_n + excluded.mood_n;
