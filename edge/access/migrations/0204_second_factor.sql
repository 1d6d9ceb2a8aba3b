-- A second factor at face doors (issue 15, edge/access/second_factor.py): residents' own PINs
-- (an HMAC with the box key and the resident id; the PIN is not kept) and, on each access
-- event, the factor used besides the face (pin / phone).
CREATE TABLE resident_pins (
    resident_id TEXT PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
    pin_hash TEXT NOT NULL,
    set_by TEXT,
    set_at TEXT NOT NULL
);
ALTER TABLE access_events ADD COLUMN factor TEXT;
