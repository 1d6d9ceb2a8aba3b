-- Face thumbnails beside access events (issue 17 #8), only with [faces] keep_thumbnails = true.
-- On the box only: not a standard record, never in the outbox or on MQTT. Removed after
-- [access] thumbnail_days by a periodic purge; with the event; with the resident (cascade).
CREATE TABLE access_thumbnails (
    event_id TEXT PRIMARY KEY REFERENCES access_events (id) ON DELETE CASCADE,
    resident_id TEXT REFERENCES residents (id) ON DELETE CASCADE,  -- NULL: a stranger
    ts TEXT NOT NULL,
    jpeg BLOB NOT NULL
);
CREATE INDEX access_thumbnails_by_ts ON access_thumbnails (ts);
CREATE INDEX access_thumbnails_by_resident ON access_thumbnails (resident_id);
