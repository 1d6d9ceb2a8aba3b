-- Which area's library holds a content file (issue 13 #7: one district saw another's uploads).
-- A file is stored once by SHA-256; each area whose admin uploaded it gets a row here, with
-- the uploader's scope path at upload time. Files uploaded before this migration go to the
-- scope of the ops user who uploaded them (the whole network if that user is gone).
CREATE TABLE content_scopes (
    sha256 TEXT NOT NULL REFERENCES content (sha256),
    scope TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (sha256, scope)
);
INSERT INTO content_scopes (sha256, scope, created_by, created_at)
SELECT c.sha256, coalesce(a.path, '/'), c.created_by, c.created_at
FROM content c LEFT JOIN ops_users u ON u.name = c.created_by
LEFT JOIN areas a ON a.id = u.area_id;
