-- Access control (issue 4): residents' door rights, time windows and blocks; visitor passes
-- (QR + PIN) and every use of one. Access decisions themselves are access_events (0001).

-- Extra rights beyond residents.doors: a door, or every door of a building.
CREATE TABLE door_rights (
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('door', 'building')),
    target TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (resident_id, scope, target)
);

-- When a resident may pass; none at all = any time. Local time of the box, minutes since
-- midnight; end <= start wraps past midnight. days: ISO weekdays, "12345" = Mon..Fri.
CREATE TABLE access_windows (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    door_id TEXT,                      -- NULL: every door
    days TEXT NOT NULL DEFAULT '1234567',
    start_min INTEGER NOT NULL CHECK (start_min BETWEEN 0 AND 1440),
    end_min INTEGER NOT NULL CHECK (end_min BETWEEN 0 AND 1440),
    created_at TEXT NOT NULL
);
CREATE INDEX access_windows_by_resident ON access_windows (resident_id);

CREATE TABLE access_blocks (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    door_id TEXT,                      -- NULL: every door
    reason TEXT NOT NULL DEFAULT '',
    until TEXT,                        -- NULL: until lifted
    created_by TEXT,
    created_at TEXT NOT NULL,
    lifted_at TEXT,
    lifted_by TEXT
);
CREATE INDEX access_blocks_by_resident ON access_blocks (resident_id);

CREATE TABLE visitor_passes (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    visitor TEXT NOT NULL DEFAULT '',
    doors TEXT NOT NULL,               -- JSON list of door ids
    valid_from TEXT NOT NULL,
    valid_to TEXT NOT NULL,
    uses_total INTEGER NOT NULL CHECK (uses_total >= 1),
    uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
    revoked INTEGER NOT NULL DEFAULT 0,
    pin_hash TEXT NOT NULL,            -- HMAC of the PIN with the box key; the PIN is not kept
    created_by TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX visitor_passes_by_pin ON visitor_passes (pin_hash);
CREATE INDEX visitor_passes_by_resident ON visitor_passes (resident_id);

CREATE TABLE pass_uses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id TEXT NOT NULL REFERENCES visitor_passes (id) ON DELETE CASCADE,
    door_id TEXT NOT NULL,
    method TEXT NOT NULL,              -- qr, pin
    ts TEXT NOT NULL
);
CREATE INDEX pass_uses_by_pass ON pass_uses (pass_id);
