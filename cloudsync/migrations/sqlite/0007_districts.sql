-- Parity with postgres 0009 (docs/deploy.md "Statistics and lists at scale"): records of the
-- classes the ops lists read (reports, tickets, alerts: storage.base.DISTRICT_KINDS) carry
-- their box's district, the first two levels of its area path ('/city/district/'; the path
-- itself when shorter), so a city's or a district's lists ask for its districts instead of
-- every box id (StorageBase.record_scope). A record keeps the district its box was in when it
-- was stored. SQLite has no roll-ups (small installs aggregate the records): only the column,
-- set by a trigger on insert (PostgreSQL stamps it in the upload statement).

ALTER TABLE records ADD COLUMN district TEXT;

CREATE TRIGGER records_district AFTER INSERT ON records
WHEN NEW.kind IN ('report', 'report_correction', 'repair_ticket', 'community_event',
                  'board_post', 'alert')
BEGIN
    UPDATE records SET district = (
        SELECT CASE WHEN instr(substr(a.path, instr(substr(a.path, 2), '/') + 2), '/') = 0
                    THEN a.path
                    ELSE substr(a.path, 1, instr(substr(a.path, 2), '/') + 1
                                + instr(substr(a.path, instr(substr(a.path, 2), '/') + 2), '/'))
               END
        FROM boxes b JOIN areas a ON a.id = b.community_id WHERE b.id = NEW.box_id)
    WHERE box_id = NEW.box_id AND seq = NEW.seq;
END;

UPDATE records SET district = (
    SELECT CASE WHEN instr(substr(a.path, instr(substr(a.path, 2), '/') + 2), '/') = 0
                THEN a.path
                ELSE substr(a.path, 1, instr(substr(a.path, 2), '/') + 1
                            + instr(substr(a.path, instr(substr(a.path, 2), '/') + 2), '/'))
           END
    FROM boxes b JOIN areas a ON a.id = b.community_id WHERE b.id = records.box_id)
WHERE kind IN ('report', 'report_correction', 'repair_ticket', 'community_event', 'board_post',
               'alert');

CREATE INDEX records_by_district ON records (district, kind, ts) WHERE district IS NOT NULL;
