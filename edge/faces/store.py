"""Residents, face templates and negative examples (migration 0101_faces.sql).

Functions take the :class:`Store`; the daemon calls them on the store thread with
``await box.store.run(faces.fn, box.store.sync, ...)``. Embeddings are stored as raw float32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from edge.core.standard import Resident, new_id
from edge.core.store.core import Store, StoreError

DIM = 128


class NotFound(StoreError):
    """No such resident."""


@dataclass(frozen=True)
class Change:
    seq: int
    op: str  # add_template, del_template, add_negative, del_negative
    item_id: str
    resident_id: str
    embedding: np.ndarray | None  # for adds whose row still exists


def _blob(vec: np.ndarray) -> bytes:
    v = np.asarray(vec, dtype="<f4").reshape(-1)
    if v.shape[0] != DIM:
        raise ValueError(f"embedding must have {DIM} values, got {v.shape[0]}")
    return v.tobytes()


def _vec(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# --- residents ------------------------------------------------------------------------------


def add_resident(store: Store, rec: Resident, *, replace: bool = False) -> None:
    with store.transaction():
        if not replace and get_resident(store, rec.id) is not None:
            raise StoreError(f"resident {rec.id} already exists")
        store.record(rec)  # Resident.TABLE = "residents"; event only, no outbox row


def get_resident(store: Store, resident_id: str) -> dict[str, Any] | None:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM residents WHERE id = ?", [resident_id]))
    return _resident_row(rows[0]) if rows else None


def list_residents(store: Store) -> list[dict[str, Any]]:
    with store.reading():
        rows = list(
            store.db.query(
                "SELECT r.*, (SELECT count(*) FROM face_templates t WHERE t.resident_id = r.id)"
                " AS templates,"
                " (SELECT count(*) FROM face_negatives n WHERE n.resident_id = r.id)"
                " AS negatives FROM residents r ORDER BY r.id"
            )
        )
    return [_resident_row(r) for r in rows]


def delete_resident(store: Store, resident_id: str) -> int:
    """Delete a resident with their templates and negatives (cascade); returns templates gone."""
    with store.transaction():
        if get_resident(store, resident_id) is None:
            raise NotFound(f"no resident {resident_id}")
        n = store.db.execute(
            "SELECT count(*) FROM face_templates WHERE resident_id = ?", [resident_id]
        ).fetchone()[0]
        store.db.execute("DELETE FROM residents WHERE id = ?", [resident_id])
    return n


def _resident_row(r: dict[str, Any]) -> dict[str, Any]:
    r = dict(r)
    r["doors"] = json.loads(r.get("doors") or "[]")
    return r


# --- templates and negatives -----------------------------------------------------------------


def add_template(
    store: Store, resident_id: str, embedding: np.ndarray, quality: float, model: str, source: str
) -> str:
    tid = new_id("ft")
    with store.transaction():
        if get_resident(store, resident_id) is None:
            raise NotFound(f"no resident {resident_id}")
        store.db.execute(
            "INSERT INTO face_templates (id, resident_id, embedding, quality, model, source,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [tid, resident_id, _blob(embedding), float(quality), model, source, _now()],
        )
    return tid


def add_negative(
    store: Store, resident_id: str, embedding: np.ndarray, similarity: float | None, actor: str
) -> str:
    nid = new_id("fn")
    with store.transaction():
        if get_resident(store, resident_id) is None:
            raise NotFound(f"no resident {resident_id}")
        store.db.execute(
            "INSERT INTO face_negatives (id, resident_id, embedding, similarity, actor,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [nid, resident_id, _blob(embedding), similarity, actor, _now()],
        )
    return nid


def load_all(store: Store) -> tuple[int, list[tuple[str, str, np.ndarray]], dict[str, np.ndarray]]:
    """(change cursor, templates, negatives per resident) for loading the gallery at start."""
    with store.reading():
        cursor = store.db.execute("SELECT coalesce(max(seq), 0) FROM face_changes").fetchone()[0]
        rows = store.db.execute("SELECT id, resident_id, embedding FROM face_templates").fetchall()
        neg_rows = store.db.execute("SELECT resident_id, embedding FROM face_negatives").fetchall()
    templates = [(tid, rid, _vec(b)) for tid, rid, b in rows]
    negatives: dict[str, list[np.ndarray]] = {}
    for rid, b in neg_rows:
        negatives.setdefault(rid, []).append(_vec(b))
    return cursor, templates, {k: np.stack(v) for k, v in negatives.items()}


def load_all_negatives_only(
    store: Store,
) -> tuple[int, list[tuple[str, str, np.ndarray]], dict[str, np.ndarray]]:
    """(change cursor, [], negatives per resident): templates come from load_matrix."""
    with store.reading():
        cursor = store.db.execute("SELECT coalesce(max(seq), 0) FROM face_changes").fetchone()[0]
        neg_rows = store.db.execute("SELECT resident_id, embedding FROM face_negatives").fetchall()
    negatives: dict[str, list[np.ndarray]] = {}
    for rid, b in neg_rows:
        negatives.setdefault(rid, []).append(_vec(b))
    return cursor, [], {k: np.stack(v) for k, v in negatives.items()}


def load_matrix(store: Store) -> tuple[list[str], list[str], np.ndarray]:
    """All templates as (ids, resident ids, one (n, 128) matrix), streamed into one buffer
    (no list of 100k blobs held at once: the daemon's peak memory stays near the gallery's)."""
    with store.reading():
        n = store.db.execute("SELECT count(*) FROM face_templates").fetchone()[0]
        mat = np.empty((n, DIM), np.float32)
        tids: list[str] = []
        rids: list[str] = []
        cur = store.db.execute("SELECT id, resident_id, embedding FROM face_templates")
        for i, (tid, rid, blob) in enumerate(cur):
            if i >= n:
                break
            mat[i] = np.frombuffer(blob, dtype="<f4")
            tids.append(tid)
            rids.append(rid)
    return tids, rids, mat[: len(tids)]


def changes_after(store: Store, cursor: int, limit: int = 1000) -> list[Change]:
    with store.reading():
        rows = store.db.execute(
            "SELECT c.seq, c.op, c.item_id, c.resident_id,"
            " coalesce(t.embedding, n.embedding) FROM face_changes c"
            " LEFT JOIN face_templates t ON c.op = 'add_template' AND t.id = c.item_id"
            " LEFT JOIN face_negatives n ON c.op = 'add_negative' AND n.id = c.item_id"
            " WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            [cursor, limit],
        ).fetchall()
    return [Change(s, op, i, r, None if b is None else _vec(b)) for s, op, i, r, b in rows]


def negatives_of(store: Store, resident_id: str) -> np.ndarray:
    with store.reading():
        rows = store.db.execute(
            "SELECT embedding FROM face_negatives WHERE resident_id = ?", [resident_id]
        ).fetchall()
    return np.stack([_vec(r[0]) for r in rows]) if rows else np.zeros((0, DIM), np.float32)


def templates_by_model(store: Store) -> dict[str, int]:
    """Template count per embedding label (face_templates.model): after a change of the
    embedding setting (e.g. [faces] flip) the older templates show here until re-enrolled."""
    with store.reading():
        rows = store.db.execute(
            "SELECT model, count(*) FROM face_templates GROUP BY model ORDER BY model"
        ).fetchall()
    return {m: c for m, c in rows}


STALE_LISTED = 10  # resident ids named in a mismatch (the rest are counted)


def embedding_mismatch(execute: Any, label: str) -> dict[str, Any] | None:
    """Templates embedded otherwise than ``label`` (weights.embedding_label of the current
    setting) says: another [faces] flip setting, or another model file. ``execute``: a
    DB-API ``execute`` (the store's, or the doctor's read-only connection's). None when every
    template is of the current kind. The box keeps no enrolment photos or crops
    (routes.py), so such templates cannot be embedded again on the box: their residents must
    be enrolled again. ``residents_without_current``: residents none of whose templates is
    of the current kind (the ones to enrol again; a resident already enrolled again keeps
    the old template beside the new one, which is harmless)."""
    other = {m: (int(c), int(r)) for m, c, r in execute(
        "SELECT model, count(*), count(DISTINCT resident_id) FROM face_templates"
        " WHERE model != ? GROUP BY model ORDER BY count(*) DESC, model", [label]).fetchall()}
    if not other:
        return None
    stale = [r for (r,) in execute(
        "SELECT resident_id FROM face_templates GROUP BY resident_id"
        " HAVING sum(model = ?) = 0 ORDER BY resident_id", [label]).fetchall()]
    total = execute("SELECT count(*) FROM face_templates").fetchone()[0]
    flip_twin = label.replace("sface+flip:", "sface:") if label.startswith("sface+flip:") \
        else label.replace("sface:", "sface+flip:")
    return {
        "setting": label,
        "templates": int(total),
        "other_templates": sum(c for c, _ in other.values()),
        "by_model": {m: c for m, (c, _) in other.items()},
        # the other flip setting of the same model file: they still match (docs/faces.md);
        # anything else was made by another model and does not
        "other_flip_setting": sum(c for m, (c, _) in other.items() if m == flip_twin),
        "other_model": sum(c for m, (c, _) in other.items() if m != flip_twin),
        "residents_without_current": len(stale),
        "residents_to_enrol_again": stale[:STALE_LISTED],
    }


def embedding_mismatch_of(store: Store, label: str) -> dict[str, Any] | None:
    with store.reading():
        return embedding_mismatch(store.db.execute, label)


def template_count(store: Store) -> int:
    with store.reading():
        return store.db.execute("SELECT count(*) FROM face_templates").fetchone()[0]


def add_templates_bulk(
    store: Store, rows: list[tuple[str, str, np.ndarray]], model: str = "bench"
) -> None:
    """Insert many (template id, resident id, embedding) at once (benchmarks, imports)."""
    now = _now()
    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO face_templates (id, resident_id, embedding, quality, model, source,"
            " created_at) VALUES (?, ?, ?, 1.0, ?, 'bulk', ?)",
            [(t, r, _blob(v), model, now) for t, r, v in rows],
        )


def gallery_counts(store: Store) -> tuple[int, int]:
    """(residents with at least one template, templates): what the door threshold uses."""
    with store.reading():
        row = store.db.execute(
            "SELECT count(DISTINCT resident_id), count(*) FROM face_templates"
        ).fetchone()
    return int(row[0]), int(row[1])


def save_gallery_stats(
    store: Store,
    version: int,
    templates: int,
    residents: int,
    mean: np.ndarray | None,
    operating: dict[str, Any],
    scores: str = "centred",
    cohort: int = 0,
    template_stats: tuple[list[str], np.ndarray, np.ndarray] | None = None,
    replace_all: bool = False,
) -> None:
    """The statistics the scores are computed with, for the gallery version (face_changes
    cursor) they belong to: recomputed by the faces service as residents come and go.
    ``template_stats``: (template ids, cohort means, cohort spreads) of the templates whose
    statistics changed (all of them with ``replace_all``, after a rebase). A template deleted
    meanwhile (another process) is skipped; its row would go with it anyway."""
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO face_gallery_stats (id, gallery_version, templates,"
            " residents, centred, mean, operating, updated_at, scores, cohort)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (version, templates, residents, int(mean is not None),
             None if mean is None else _blob(mean), json.dumps(operating), _now(), scores,
             cohort),
        )
        if replace_all:
            store.db.execute("DELETE FROM face_template_stats")
        if template_stats is not None:
            tids, mus, sds = template_stats
            store.db.conn.executemany(
                "INSERT OR REPLACE INTO face_template_stats (template_id, gallery_version,"
                " cohort_mean, cohort_spread) SELECT ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM face_templates WHERE id = ?)",
                [(t, version, float(m), float(d), t)
                 for t, m, d in zip(tids, mus, sds, strict=True)],
            )


def gallery_stats(store: Store) -> dict[str, Any] | None:
    with store.reading():
        row = store.db.execute(
            "SELECT gallery_version, templates, residents, centred, mean, operating, updated_at,"
            " scores, cohort FROM face_gallery_stats WHERE id = 1"
        ).fetchone()
    if row is None:
        return None
    return {
        "gallery_version": row[0], "templates": row[1], "residents": row[2],
        "centred": bool(row[3]), "mean": None if row[4] is None else _vec(row[4]),
        "operating": json.loads(row[5]), "updated_at": row[6], "scores": row[7],
        "cohort": row[8],
    }


def template_stats(store: Store) -> dict[str, tuple[int, float, float]]:
    """template id -> (gallery version, cohort mean, cohort spread)."""
    with store.reading():
        rows = store.db.execute(
            "SELECT template_id, gallery_version, cohort_mean, cohort_spread"
            " FROM face_template_stats").fetchall()
    return {t: (v, m, d) for t, v, m, d in rows}

