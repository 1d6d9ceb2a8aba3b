-- Faces (issue 3): residents, their face templates, and "not this person" negative examples.
-- Templates are SFace embeddings (128 float32, little-endian, 512 bytes); they and face photos
-- never leave the box: no outbox rows, no events carry them.

CREATE TABLE residents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    building TEXT,
    unit TEXT,
    room TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    doors TEXT NOT NULL DEFAULT '[]'   -- JSON list of door ids; empty = all doors
);

CREATE TABLE face_templates (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    quality REAL NOT NULL,             -- 0..1 quality score of the photo it came from
    model TEXT NOT NULL,               -- embedding model name and manifest sha256 prefix
    source TEXT NOT NULL DEFAULT '',   -- e.g. file name or "api:<actor>"
    created_at TEXT NOT NULL
);
CREATE INDEX face_templates_by_resident ON face_templates (resident_id);

CREATE TABLE face_negatives (
    id TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    similarity REAL,                   -- how close the wrong match was
    actor TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX face_negatives_by_resident ON face_negatives (resident_id);

-- Every insert/delete of a template or negative, in order, whoever made it (daemon API, CLI in
-- another process, a cascade from deleting a resident): the daemon follows this log to update
-- its in-memory gallery incrementally instead of reloading it.
CREATE TABLE face_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL,                  -- add_template, del_template, add_negative, del_negative
    item_id TEXT NOT NULL,
    resident_id TEXT NOT NULL
);

CREATE TRIGGER face_templates_added AFTER INSERT ON face_templates BEGIN
    INSERT INTO face_changes (op, item_id, resident_id) VALUES ('add_template', NEW.id, NEW.resident_id);
END;
CREATE TRIGGER face_templates_deleted AFTER DELETE ON face_templates BEGIN
    INSERT INTO face_changes (op, item_id, resident_id) VALUES ('del_template', OLD.id, OLD.resident_id);
END;
CREATE TRIGGER face_negatives_added AFTER INSERT ON face_negatives BEGIN
    INSERT INTO face_changes (op, item_id, resident_id) VALUES ('add_negative', NEW.id, NEW.resident_id);
END;
CREATE TRIGGER face_negatives_deleted AFTER DELETE ON face_negatives BEGIN
    INSERT INTO face_changes (op, item_id, resident_id) VALUES ('del_negative', OLD.id, OLD.resident_id);
END;
