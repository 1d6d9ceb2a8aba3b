-- A report or repair ticket replaced by a newer record of itself is marked at upload, so the
-- ops lists read "the newest record of each" as a plain filter (NOT superseded) instead of an
-- anti-join at every read (probe 12's lists: a district's report list hashed every report
-- in the database, docs/deploy.md). A box sends a report or ticket again, whole, on every
-- change, with the same record id and a new seq; a record arriving after a newer one of its
-- report (an old upload retried late) is marked at once.
ALTER TABLE records ADD COLUMN superseded BOOLEAN NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION qilu_supersede() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE records r SET superseded = true
    FROM (SELECT DISTINCT kind, box_id, record_id FROM added
          WHERE kind IN ('report', 'repair_ticket')) k
    WHERE r.kind = k.kind AND r.record_id = k.record_id AND r.box_id = k.box_id
      AND NOT r.superseded
      AND r.seq < (SELECT max(n.seq) FROM records n WHERE n.kind = k.kind
                   AND n.record_id = k.record_id AND n.box_id = k.box_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER records_supersede AFTER INSERT ON records
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION qilu_supersede();

-- The records stored before: each one a newer record of its report or ticket replaced.
UPDATE records r SET superseded = true
WHERE r.kind IN ('report', 'repair_ticket') AND EXISTS (
    SELECT 1 FROM records n WHERE n.kind = r.kind AND n.record_id = r.record_id
    AND n.box_id = r.box_id AND n.seq > r.seq);
