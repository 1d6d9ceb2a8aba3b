-- Each area's library row has its own title (probe 12): a file is stored once by SHA-256,
-- and an area uploading bytes another area uploaded before saw that area's title and staff
-- name (and lost its own title). Rows from before take the file's first title.
ALTER TABLE content_scopes ADD COLUMN title TEXT NOT NULL DEFAULT '';
UPDATE content_scopes SET title = (
    SELECT c.title FROM content c WHERE c.sha256 = content_scopes.sha256);
