-- A report or repair ticket replaced by a newer record of itself is marked at upload
-- (postgres 0017 says why): the ops lists read NOT superseded.
ALTER TABLE records ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER records_supersede AFTER INSERT ON records
WHEN NEW.kind IN ('report', 'repair_ticket')
BEGIN
    UPDATE records SET superseded = 1
    WHERE kind = NEW.kind AND record_id = NEW.record_id AND box_id = NEW.box_id
      AND superseded = 0 AND seq < (
          SELECT max(n.seq) FROM records n WHERE n.kind = NEW.kind
          AND n.record_id = NEW.record_id AND n.box_id = NEW.box_id);
END;

UPDATE records SET superseded = 1
WHERE kind IN ('report', 'repair_ticket') AND EXISTS (
    SELECT 1 FROM records n WHERE n.kind = records.kind AND n.record_id = records.record_id
    AND n.box_id = records.box_id AND n.seq > records.seq);
