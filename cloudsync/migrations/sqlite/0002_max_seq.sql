-- The highest seq stored per box: the upload walks the watermark over stored seqs only when
-- this lies above it (records arrived out of order), not on every in-order batch.
ALTER TABLE boxes ADD COLUMN max_seq INTEGER NOT NULL DEFAULT 0;
UPDATE boxes SET max_seq = coalesce((SELECT max(seq) FROM records r WHERE r.box_id = boxes.id), 0);
