-- Open-set face doors (issue 15): the gallery's statistics (the mean the scores are centred on,
-- the threshold a target rate gave) are kept with the gallery version they were computed for.
-- The access events' new columns are in the access range (0202).
CREATE TABLE face_gallery_stats (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    gallery_version INTEGER NOT NULL,
    templates INTEGER NOT NULL,
    residents INTEGER NOT NULL,
    centred INTEGER NOT NULL,
    mean BLOB,
    operating TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL
);
