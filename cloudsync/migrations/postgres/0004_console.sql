-- Console (docs/console.md): ops users sign in with a password (+ optional TOTP), sessions,
-- the audit log of every write, community coordinates for the map, alert acknowledgements.
ALTER TABLE ops_users ADD COLUMN password_hash TEXT;  -- scrypt$n$r$p$salt$hash; NULL: no sign-in
ALTER TABLE ops_users ADD COLUMN totp_secret TEXT;  -- base32; NULL: no second factor

CREATE TABLE ops_sessions (
    id_hash TEXT PRIMARY KEY,  -- sha256 of the cookie value; the value itself is never stored
    user_name TEXT NOT NULL REFERENCES ops_users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,  -- absolute end
    idle_until TEXT NOT NULL  -- slides forward while the session is used
);
CREATE INDEX ops_sessions_by_user ON ops_sessions (user_name);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,  -- session, token, or login
    action TEXT NOT NULL,  -- "POST /api/v1/ops/publish", "login", "login_failed"...
    area_path TEXT NOT NULL,  -- where it acted ('/' network-wide); scopes who may read it
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL
);
CREATE INDEX audit_by_area ON audit_log (area_path, id);
CREATE INDEX audit_by_actor ON audit_log (actor, ts);

ALTER TABLE areas ADD COLUMN lat DOUBLE PRECISION;
ALTER TABLE areas ADD COLUMN lon DOUBLE PRECISION;

CREATE TABLE alert_acks (
    box_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('acknowledged', 'assigned', 'closed')),
    assignee TEXT,
    note TEXT NOT NULL DEFAULT '',
    by_user TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (box_id, seq)
);

-- The live alert feed reads what arrived since its last look.
CREATE INDEX records_by_arrival ON records (kind, received_at);
