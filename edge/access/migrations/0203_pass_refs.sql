-- Short visitor pass references (通行证 #1002), numbered like reports and tickets (0403).
ALTER TABLE visitor_passes ADD COLUMN ref INTEGER;
UPDATE visitor_passes SET ref = 1000 + (SELECT count(*) FROM visitor_passes p2 WHERE p2.rowid <= visitor_passes.rowid);
CREATE UNIQUE INDEX visitor_passes_by_ref ON visitor_passes (ref);
CREATE TRIGGER visitor_passes_ref AFTER INSERT ON visitor_passes WHEN NEW.ref IS NULL
BEGIN
    UPDATE visitor_passes SET ref = (SELECT coalesce(max(ref), 1000) + 1 FROM visitor_passes) WHERE rowid = NEW.rowid;
END;
