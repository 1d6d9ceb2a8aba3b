-- Sync (issue 7): the download-feed items this box applied, so a re-delivered item (after a
-- crash before the cursor moved) is recognised and not applied twice.
CREATE TABLE sync_feed_applied (
    feed_id INTEGER PRIMARY KEY,
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    applied_at TEXT NOT NULL
);
