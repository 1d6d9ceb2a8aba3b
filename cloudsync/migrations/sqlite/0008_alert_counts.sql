-- Parity with postgres 0010 (docs/deploy.md "Per-community tables, the month before, open
-- critical alerts"): open critical alerts counted per box and month of the alert's ts, kept by
-- triggers in the transaction that stores or deletes an alert or changes its acknowledgement,
-- so the console overview sums these rows instead of reading every critical alert stored.
-- SQLite has no roll-ups (small installs aggregate the records): the blocks and
-- per-community hours of postgres 0010 have no counterpart here.

CREATE TABLE alert_counts (
    box_id TEXT NOT NULL,
    month TEXT NOT NULL,  -- substr(ts, 1, 7) of the alerts
    n INTEGER NOT NULL,  -- critical alerts of the box in that month not closed
    PRIMARY KEY (box_id, month)
);

CREATE TRIGGER alert_counts_stored AFTER INSERT ON records
WHEN NEW.kind = 'alert' AND json_extract(NEW.payload, '$.level') = 'critical'
  AND NOT EXISTS (SELECT 1 FROM alert_acks k WHERE k.box_id = NEW.box_id AND k.seq = NEW.seq
                  AND k.state = 'closed')
BEGIN
    INSERT INTO alert_counts (box_id, month, n) VALUES (NEW.box_id, substr(NEW.ts, 1, 7), 1)
    ON CONFLICT (box_id, month) DO UPDATE SET n = n + 1;
END;

-- Retention deletes records (cloudsync/retention.py): an open one leaves the count.
CREATE TRIGGER alert_counts_deleted AFTER DELETE ON records
WHEN OLD.kind = 'alert' AND json_extract(OLD.payload, '$.level') = 'critical'
  AND NOT EXISTS (SELECT 1 FROM alert_acks k WHERE k.box_id = OLD.box_id AND k.seq = OLD.seq
                  AND k.state = 'closed')
BEGIN
    UPDATE alert_counts SET n = n - 1
    WHERE box_id = OLD.box_id AND month = substr(OLD.ts, 1, 7);
    DELETE FROM alert_counts WHERE box_id = OLD.box_id AND month = substr(OLD.ts, 1, 7)
      AND n = 0;
END;

-- An acknowledgement whose state moves into or out of "closed" (an upsert's update fires the
-- UPDATE trigger): the alert's count moves, if it is a critical alert still stored.
CREATE TRIGGER alert_counts_ack_new AFTER INSERT ON alert_acks WHEN NEW.state = 'closed'
BEGIN
    UPDATE alert_counts SET n = n - 1 WHERE box_id = NEW.box_id AND month = (
        SELECT substr(r.ts, 1, 7) FROM records r WHERE r.box_id = NEW.box_id
        AND r.seq = NEW.seq AND r.kind = 'alert'
        AND json_extract(r.payload, '$.level') = 'critical');
    DELETE FROM alert_counts WHERE box_id = NEW.box_id AND n = 0;
END;

CREATE TRIGGER alert_counts_ack_changed AFTER UPDATE OF state ON alert_acks
WHEN (OLD.state = 'closed') <> (NEW.state = 'closed')
BEGIN
    INSERT INTO alert_counts (box_id, month, n)
    SELECT r.box_id, substr(r.ts, 1, 7), CASE WHEN NEW.state = 'closed' THEN -1 ELSE 1 END
    FROM records r WHERE r.box_id = NEW.box_id AND r.seq = NEW.seq AND r.kind = 'alert'
      AND json_extract(r.payload, '$.level') = 'critical'
    ON CONFLICT (box_id, month) DO UPDATE SET n = n + excluded.n;
    DELETE FROM alert_counts WHERE box_id = NEW.box_id AND n = 0;
END;

CREATE TRIGGER alert_counts_ack_gone AFTER DELETE ON alert_acks WHEN OLD.state = 'closed'
BEGIN
    INSERT INTO alert_counts (box_id, month, n)
    SELECT r.box_id, substr(r.ts, 1, 7), 1
    FROM records r WHERE r.box_id = OLD.box_id AND r.seq = OLD.seq AND r.kind = 'alert'
      AND json_extract(r.payload, '$.level') = 'critical'
    ON CONFLICT (box_id, month) DO UPDATE SET n = n + 1;
END;

-- The alerts stored before: in this migration's transaction (SQLite has one writer, and
-- migrate runs before serve; a run stopped halfway rolls back and starts again).
INSERT INTO alert_counts (box_id, month, n)
SELECT r.box_id, substr(r.ts, 1, 7), count(*) FROM records r
LEFT JOIN alert_acks k ON k.box_id = r.box_id AND k.seq = r.seq
WHERE r.kind = 'alert' AND json_extract(r.payload, '$.level') = 'critical'
  AND (k.state IS NULL OR k.state <> 'closed')
GROUP BY 1, 2;
