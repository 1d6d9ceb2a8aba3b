-- Per-template cohort normalisation (issue 15, docs/faces.md): each template's cohort mean and
-- spread (its centred cosines against the other residents' templates), kept with the gallery
-- version they were computed for; gone with the template. The gallery-wide part (the scale
-- scores are on, the cohort size) goes beside the mean in face_gallery_stats.
CREATE TABLE face_template_stats (
    template_id TEXT PRIMARY KEY REFERENCES face_templates(id) ON DELETE CASCADE,
    gallery_version INTEGER NOT NULL,
    cohort_mean REAL NOT NULL,
    cohort_spread REAL NOT NULL
);
ALTER TABLE face_gallery_stats ADD COLUMN scores TEXT NOT NULL DEFAULT 'centred';
ALTER TABLE face_gallery_stats ADD COLUMN cohort INTEGER NOT NULL DEFAULT 0;
