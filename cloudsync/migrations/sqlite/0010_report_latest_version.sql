-- A report counts once, as its newest record (probe 12; postgres 0015 says why): a record
-- that is now its report's newest adds itself to the weekly roll-up and takes away the one
-- it replaces (the newest older record); a record older than one stored changes nothing.
DROP TRIGGER records_report_added;
CREATE TRIGGER records_report_added AFTER INSERT ON records WHEN NEW.kind = 'report'
BEGIN
    INSERT INTO report_weekly (week, box_id, category, n, mood_sum, mood_n)
    SELECT week, box_id, category, k, k * mood, k * has_mood FROM (
        SELECT coalesce(date(substr(json_extract(r.payload, '$.ts'), 1, 10), 'weekday 0',
                             '-6 days'),
                        date(substr(r.received_at, 1, 10), 'weekday 0', '-6 days')) AS week,
               r.box_id, coalesce(json_extract(r.payload, '$.category'), '') AS category,
               CASE WHEN r.seq = NEW.seq THEN 1 ELSE -1 END AS k,
               CASE WHEN json_type(r.payload, '$.sentiment') IN ('integer', 'real')
                    THEN json_extract(r.payload, '$.sentiment') ELSE 0 END AS mood,
               CASE WHEN json_type(r.payload, '$.sentiment') IN ('integer', 'real')
                    THEN 1 ELSE 0 END AS has_mood
        FROM records r WHERE r.box_id = NEW.box_id AND r.seq IN (NEW.seq, (
            SELECT max(p.seq) FROM records p WHERE p.kind = 'report'
            AND p.record_id = NEW.record_id AND p.box_id = NEW.box_id AND p.seq < NEW.seq))
    ) WHERE NOT EXISTS (
        SELECT 1 FROM records n WHERE n.kind = 'report' AND n.record_id = NEW.record_id
        AND n.box_id = NEW.box_id AND n.seq > NEW.seq)
    ON CONFLICT (week, box_id, category) DO UPDATE SET n = n + excluded.n,
        mood_sum = mood_sum + excluded.mood_sum, mood_n = mood_n + excluded.mood_n;
    INSERT INTO report_search (box_id, seq) VALUES (NEW.box_id, NEW.seq);
    INSERT INTO report_fts (rowid, text) VALUES (
        (SELECT id FROM report_search WHERE box_id = NEW.box_id AND seq = NEW.seq),
        coalesce(json_extract(NEW.payload, '$.text'), ''));
END;

-- The records already counted that a newer record of their report replaced: taken away.
INSERT INTO report_weekly (week, box_id, category, n, mood_sum, mood_n)
SELECT coalesce(date(substr(json_extract(payload, '$.ts'), 1, 10), 'weekday 0', '-6 days'),
                date(substr(received_at, 1, 10), 'weekday 0', '-6 days')),
       box_id, coalesce(json_extract(payload, '$.category'), ''), -count(*),
       -coalesce(sum(CASE WHEN json_type(payload, '$.sentiment') IN ('integer', 'real')
                          THEN json_extract(payload, '$.sentiment') END), 0),
       -sum(CASE WHEN json_type(payload, '$.sentiment') IN ('integer', 'real') THEN 1 ELSE 0 END)
FROM records r WHERE kind = 'report' AND EXISTS (
    SELECT 1 FROM records n WHERE n.kind = 'report' AND n.box_id = r.box_id
    AND n.record_id = r.record_id AND n.seq > r.seq)
GROUP BY 1, 2, 3
ON CONFLICT (week, box_id, category) DO UPDATE SET n = n + excluded.n,
    mood_sum = mood_sum + excluded.mood_sum, mood_n = mood_n + excluded.mood_n;
