-- Open-set face doors (issue 15): a face decision records the fused score of the approach and
-- how many frames it used; the gallery's statistics (the mean the scores are centred on, the
-- threshold a target rate gave) are kept with the gallery version they were computed for.
ALTER TABLE access_events ADD COLUMN fused_score REAL;
ALTER TABLE access_events ADD COLUMN frames_used INTEGER;
ALTER TABLE access_events ADD COLUMN track INTEGER;

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
