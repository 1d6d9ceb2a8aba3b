-- Cross-worker relay over LISTEN/NOTIFY (cloudsync/relay_bus.py). Both tables are unlogged:
-- they describe open sockets and requests in flight, which a database crash ends anyway
-- (the workers' listener connections die with it and re-register).
-- Which worker holds a box's relay socket: the worker is its listener connection's backend
-- (pid + start time, so a reused pid never matches a dead worker's rows).
CREATE UNLOGGED TABLE relay_sockets (
    box_id TEXT PRIMARY KEY,
    worker_pid INTEGER NOT NULL,
    worker_start TIMESTAMPTZ NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Request or answer bodies too large for a NOTIFY payload (8000 bytes): the message carries
-- the row id, the receiver deletes the row as it reads it.
CREATE UNLOGGED TABLE relay_bodies (
    id BIGSERIAL PRIMARY KEY,
    data BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
