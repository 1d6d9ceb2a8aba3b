-- Open-set face doors (issue 15): a face decision records the fused score of the approach, how
-- many frames it used and the tracked face it was about (edge/faces/openset.py).
ALTER TABLE access_events ADD COLUMN fused_score REAL;
ALTER TABLE access_events ADD COLUMN frames_used INTEGER;
ALTER TABLE access_events ADD COLUMN track INTEGER;
