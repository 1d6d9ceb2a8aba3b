-- Issue 16: the emergency detector's "possible emergency" flag on a report, and staff
-- corrections of a report's labels (standard record report_correction: synced to the cloud
-- and used as training rows by `qilu-edge report retrain`).
ALTER TABLE reports ADD COLUMN possible_emergency INTEGER NOT NULL DEFAULT 0;

CREATE TABLE report_corrections (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    report_id TEXT NOT NULL REFERENCES reports (id),
    text TEXT NOT NULL,                 -- the report's text: the training row travels whole
    category TEXT NOT NULL,             -- the labels after the correction
    polarity TEXT NOT NULL,
    urgency TEXT NOT NULL,
    was_category TEXT NOT NULL,         -- and before it
    was_polarity TEXT NOT NULL,
    was_urgency TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX report_corrections_by_report ON report_corrections (report_id, ts);
