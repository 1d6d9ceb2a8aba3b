-- The property office (edge/office): staff accounts, their browser sessions and the audit log
-- of every staff write. Local to the box: none of it is a synced record.
CREATE TABLE office_users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,        -- scrypt (common/staffauth.py)
    totp_secret TEXT,                   -- NULL: no second factor
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE office_sessions (
    hash TEXT PRIMARY KEY,              -- sha256 of the cookie value (the value is not kept)
    name TEXT NOT NULL REFERENCES office_users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,           -- absolute end
    idle_until TEXT NOT NULL,           -- slides forward while used
    ended_at TEXT
);
CREATE INDEX office_sessions_by_name ON office_sessions (name);

CREATE TABLE office_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,                  -- session | token | login
    action TEXT NOT NULL,               -- "POST /api/v1/doors/{id}/open", "login", ...
    target TEXT NOT NULL DEFAULT '',    -- the route's path parameters, e.g. "id=d-1"
    detail TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL
);
CREATE INDEX office_audit_by_ts ON office_audit (ts);
CREATE INDEX office_audit_by_actor ON office_audit (actor, id);
