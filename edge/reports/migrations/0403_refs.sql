-- Short references residents can read aloud (反映 #1003, 报修 #1024) instead of hex ids: one
-- sequence per table and box (a box serves one community), given by a trigger so every
-- insert path gets one without knowing about it. Existing rows are numbered in insert order.
ALTER TABLE reports ADD COLUMN ref INTEGER;
UPDATE reports SET ref = 1000 + (SELECT count(*) FROM reports r2 WHERE r2.rowid <= reports.rowid);
CREATE UNIQUE INDEX reports_by_ref ON reports (ref);
CREATE TRIGGER reports_ref AFTER INSERT ON reports WHEN NEW.ref IS NULL
BEGIN
    UPDATE reports SET ref = (SELECT coalesce(max(ref), 1000) + 1 FROM reports) WHERE rowid = NEW.rowid;
END;

ALTER TABLE tickets ADD COLUMN ref INTEGER;
UPDATE tickets SET ref = 1000 + (SELECT count(*) FROM tickets t2 WHERE t2.rowid <= tickets.rowid);
CREATE UNIQUE INDEX tickets_by_ref ON tickets (ref);
CREATE TRIGGER tickets_ref AFTER INSERT ON tickets WHEN NEW.ref IS NULL
BEGIN
    UPDATE tickets SET ref = (SELECT coalesce(max(ref), 1000) + 1 FROM tickets) WHERE rowid = NEW.rowid;
END;
