-- Face scores carry their scale (raw / centred cosine, or znorm z-scores once a gallery
-- has znorm_min templates): similarity and fused_score are no longer cosines only.
ALTER TABLE access_events ADD COLUMN score_scale TEXT;
