-- Web Push subscriptions of residents' phones (the intercom rings a closed page where the
-- platform delivers Web Push). The endpoint is the browser vendor's push service URL.
CREATE TABLE intercom_push (
    endpoint TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX intercom_push_resident ON intercom_push (resident_id);
