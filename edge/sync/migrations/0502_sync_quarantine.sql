-- Sync (issue 7): outbox records the cloud refused as bad input (HTTP 400 naming the record).
-- Such a record leaves the outbox so the rest of its class goes on, but it is never dropped:
-- it waits here with its seq and the cloud's reason until `qilu-edge sync resend` puts it back
-- (e.g. after a cloud upgrade). Leaving the outbox lets the box's floor (the lowest seq still
-- in the outbox) pass it, so the cloud's contiguous watermark does not stall on it; a resent
-- record is stored at its original seq below the watermark, in per-box order.
CREATE TABLE sync_quarantine (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL
);
