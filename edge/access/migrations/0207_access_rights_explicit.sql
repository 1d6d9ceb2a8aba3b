-- Door rights are explicit (security probe 2026-11): a resident with no rights opens no door.
-- Until now "no rights at all" (residents.doors empty and no door_rights row) meant every door
-- of the community. A new scope 'all' (target '*') says so explicitly, and every resident who
-- relied on the old meaning gets that row here, so nobody loses access on upgrade; only
-- residents added later and staff edits follow the new rule (docs/access.md "Door rights").
-- SQLite cannot change a CHECK constraint in place: rebuild the table.
CREATE TABLE door_rights_new (
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('door', 'building', 'all')),
    target TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (resident_id, scope, target)
);
INSERT INTO door_rights_new SELECT resident_id, scope, target, created_by, created_at
    FROM door_rights;
DROP TABLE door_rights;
ALTER TABLE door_rights_new RENAME TO door_rights;
INSERT INTO door_rights (resident_id, scope, target, created_by, created_at)
    SELECT r.id, 'all', '*', 'migration 0207', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
    FROM residents r
    WHERE coalesce(r.doors, '[]') IN ('[]', '')
      AND NOT EXISTS (SELECT 1 FROM door_rights x WHERE x.resident_id = r.id);
