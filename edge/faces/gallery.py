"""The in-memory gallery: every template in one contiguous float32 matrix.

1:N search is one matrix-vector product over the live rows (BLAS, no Python loop) into a
preallocated score buffer, then two argmax passes (best template; best template of another
identity), ~2-3 ms at 100k x 128 on one core: the product reads the whole 51 MB matrix, so it
is bound by memory bandwidth. Large galleries are scanned in two halves on two threads, each a
single-threaded product (BLAS is held to one thread, see pipeline.py), so the scan uses both
cores without OpenBLAS's spinning worker threads. float16 storage would halve the bytes, but
numpy has no float16 BLAS and converting back costs more than the product (bench/face.py
measures both).
Adding appends a row (the buffer doubles when full); deleting moves the last row into the
hole, so enrol and delete never reload the gallery.

Mean-centring (``centre_min``): with at least that many templates, scores are cosines after
subtracting the mean of the enrolled (L2-normalised) templates and re-normalising. SFace's
embeddings share a common component, so raw impostor cosines sit high; centring lowers the
stranger tail far more than it lowers genuine pairs (docs/faces.md). No second matrix: with
unit rows t and mean m, |t - m|^2 = 1 - 2 t.m + m.m, so one extra product per change gives
every row's norm, and a search is the same product with the centred probe u:
(t - m).u / |t - m| = (t.u - m.u) / |t - m|. The running sum is kept as templates come and
go, so the statistics follow enrolment without a reload.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

DIM = 128
SPLIT_MIN_ROWS = 20_000  # below this, handing half to a second thread costs more than it saves


@dataclass(frozen=True)
class Hit:
    resident_id: str
    similarity: float
    second_id: str | None  # best other identity
    second_similarity: float | None
    template_id: str
    # With a door's allowed residents: the best identity OUTSIDE them (the guard against a
    # stranger who resembles a resident of another building).
    outside_id: str | None = None
    outside_similarity: float | None = None


class Gallery:
    def __init__(self, dim: int = DIM, capacity: int = 1024, centre_min: int | None = None) -> None:
        self.dim = dim
        self.centre_min = centre_min  # None: plain cosine
        self._sum = np.zeros(dim, np.float64)  # of all live rows: the mean follows enrolment
        self._mean: np.ndarray | None = None  # set while centring is active and fresh
        self._cnorm = np.empty(capacity, np.float32)  # |row - mean| per row
        self._stale = True
        self._m = np.zeros((capacity, dim), np.float32)
        self._scores = np.empty(capacity, np.float32)  # search output, reused (under the lock)
        self._owner = np.zeros(capacity, np.int32)  # row -> index into _residents
        self._tids: list[str] = []  # row -> template id
        self._row: dict[str, int] = {}  # template id -> row
        self._residents: list[str] = []
        self._rindex: dict[str, int] = {}
        self._lock = threading.RLock()  # search on the face thread, updates from the loop
        self._half = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-scan")

    def __len__(self) -> int:
        return len(self._tids)

    @property
    def residents(self) -> int:
        with self._lock:  # numpy, not a set of 100k Python ints (RSS: the daemon's budget)
            n = len(self)
            return int(np.count_nonzero(np.bincount(self._owner[:n]))) if n else 0

    def nbytes(self) -> int:
        return self._m.nbytes + self._owner.nbytes + self._scores.nbytes

    def _grow(self, need: int) -> None:
        cap = self._m.shape[0]
        if need <= cap:
            return
        cap = max(need, cap * 2)  # a bulk load gets exactly its size, later adds double
        m = np.zeros((cap, self.dim), np.float32)
        m[: len(self)] = self._m[: len(self)]
        owner = np.zeros(cap, np.int32)
        owner[: len(self)] = self._owner[: len(self)]
        self._m, self._owner = m, owner
        self._scores = np.empty(cap, np.float32)
        self._cnorm = np.empty(cap, np.float32)
        self._stale = True

    def _resident_index(self, resident_id: str) -> int:
        i = self._rindex.get(resident_id)
        if i is None:
            i = self._rindex[resident_id] = len(self._residents)
            self._residents.append(resident_id)
        return i

    def add(self, template_id: str, resident_id: str, vec: np.ndarray) -> bool:
        """Add one template; False if it is already there (replaying a change is harmless)."""
        return self.add_many([template_id], [resident_id], np.asarray(vec, np.float32)[None]) == 1

    def add_many(self, tids: list[str], rids: list[str], vecs: np.ndarray) -> int:
        vecs = np.asarray(vecs, np.float32).reshape(-1, self.dim)
        with self._lock:
            if len(self) == 0 and len(set(tids)) == len(tids) and vecs.flags.c_contiguous:
                # Start-up load: adopt the caller's matrix instead of copying 50 MB.
                self._m = vecs
                self._scores = np.empty(len(vecs), np.float32)
                self._owner = np.array([self._resident_index(r) for r in rids], np.int32)
                self._tids = list(tids)
                self._row = {t: i for i, t in enumerate(tids)}
                self._sum = vecs.sum(axis=0, dtype=np.float64)
                self._cnorm = np.empty(len(vecs), np.float32)
                self._stale = True
                return len(tids)
            fresh = [i for i, t in enumerate(tids) if t not in self._row]
            n = len(self)
            self._grow(n + len(fresh))
            for k, i in enumerate(fresh):
                row = n + k
                self._m[row] = vecs[i]
                self._owner[row] = self._resident_index(rids[i])
                self._row[tids[i]] = row
                self._tids.append(tids[i])
                self._sum += vecs[i]
            self._stale = self._stale or bool(fresh)
            return len(fresh)

    def remove(self, template_id: str) -> bool:
        with self._lock:
            row = self._row.pop(template_id, None)
            if row is None:
                return False
            last = len(self) - 1
            self._sum -= self._m[row]
            self._stale = True
            if row != last:  # fill the hole with the last row: O(1), matrix stays contiguous
                self._m[row] = self._m[last]
                self._owner[row] = self._owner[last]
                moved = self._tids[last]
                self._tids[row] = moved
                self._row[moved] = row
            self._tids.pop()
            return True

    def remove_resident(self, resident_id: str) -> int:
        with self._lock:
            i = self._rindex.get(resident_id)
            if i is None:
                return 0
            rows = np.nonzero(self._owner[: len(self)] == i)[0]
            tids = [self._tids[r] for r in rows]
            for t in tids:
                self.remove(t)
            return len(tids)

    def templates_of(self, resident_id: str) -> np.ndarray:
        with self._lock:
            i = self._rindex.get(resident_id)
            if i is None:
                return np.zeros((0, self.dim), np.float32)
            return self._m[: len(self)][self._owner[: len(self)] == i].copy()

    # --- mean-centring ---------------------------------------------------------------------

    @property
    def centred(self) -> bool:
        return self.centre_min is not None and len(self) >= max(self.centre_min, 2)

    def mean(self) -> np.ndarray | None:
        """The mean of the live templates while centring is active (None otherwise)."""
        with self._lock:
            self._refresh()
            return None if self._mean is None else self._mean.copy()

    def set_mean(self, mean: np.ndarray | None) -> None:
        """Centre with a given mean (stored statistics, tests), until the next change."""
        with self._lock:
            self._refresh()
            if mean is not None and len(self):
                self._apply_mean(np.asarray(mean, np.float32))

    def _refresh(self) -> None:
        if not self._stale:
            return
        self._stale = False
        n = len(self)
        if not self.centred or n == 0:
            self._mean = None
            return
        self._apply_mean((self._sum / n).astype(np.float32))

    def _apply_mean(self, mean: np.ndarray) -> None:
        n = len(self)
        proj = self._m[:n] @ mean
        sq = 1.0 - 2.0 * proj + float(mean @ mean)
        self._cnorm[:n] = np.sqrt(np.maximum(sq, 1e-12))
        self._mean = mean

    def transform(self, vecs: np.ndarray) -> np.ndarray:
        """Vectors on the scale the gallery scores on (centred and re-normalised, or as is)."""
        with self._lock:
            self._refresh()
            v = np.asarray(vecs, np.float32)
            if self._mean is None:
                return v
            c = v - self._mean
            return c / np.maximum(np.linalg.norm(c, axis=-1, keepdims=True), 1e-12)

    def _scan(self, n: int, q: np.ndarray) -> np.ndarray:
        out = self._scores[:n]
        if n < SPLIT_MIN_ROWS:
            return np.matmul(self._m[:n], q, out=out)
        mid = n // 2
        other = self._half.submit(np.matmul, self._m[mid:n], q, out=out[mid:])
        np.matmul(self._m[:mid], q, out=out[:mid])
        other.result()
        return out

    def allowed_mask(self, resident_ids: frozenset[str]) -> np.ndarray:
        """A per-resident-index mask for ``search(allowed=...)`` (recompute after enrolment:
        residents enrolled later are outside it)."""
        with self._lock:
            mask = np.zeros(len(self._residents), bool)
            for rid in resident_ids:
                i = self._rindex.get(rid)
                if i is not None:
                    mask[i] = True
            return mask

    def search(self, q: np.ndarray, *, exclude: str | None = None,
               allowed: np.ndarray | None = None) -> Hit | None:
        """Best template's identity and the best *other* identity (for the margin).

        ``allowed`` (from :meth:`allowed_mask`): search only those residents (a door's), and
        report the best identity outside them in ``outside_*``."""
        with self._lock:
            n = len(self)
            if n == 0:
                return None
            q = np.ascontiguousarray(q, np.float32)
            self._refresh()
            if self._mean is None:
                scores = self._scan(n, q)
            else:
                u = np.ascontiguousarray(self.transform(q))
                scores = self._scan(n, u)
                scores -= float(self._mean @ u)
                scores /= self._cnorm[:n]
            owner = self._owner[:n]
            if exclude is not None and exclude in self._rindex:
                scores[owner == self._rindex[exclude]] = -2.0
            outside_id = outside_sim = None
            if allowed is not None:
                mask = np.zeros(len(self._residents), bool)
                mask[: len(allowed)] = allowed[: len(self._residents)]
                rows_in = mask[owner]
                if not rows_in.all():
                    o = int(np.argmax(np.where(rows_in, -3.0, scores)))
                    if not rows_in[o] and scores[o] > -2.0:
                        outside_id, outside_sim = self._residents[owner[o]], float(scores[o])
                    scores[~rows_in] = -2.0
            best = int(np.argmax(scores))
            best_sim = float(scores[best])
            if best_sim <= -2.0:
                return None
            # The best *other* identity: blank the best one's rows (the buffer is ours).
            scores[owner == owner[best]] = -3.0
            second: int | None = int(np.argmax(scores)) if n > 1 else None
            second_sim = None if second is None else float(scores[second])
            if second_sim is not None and second_sim <= -2.0:
                second = second_sim = None
            return Hit(
                resident_id=self._residents[owner[best]],
                similarity=best_sim,
                second_id=None if second is None else self._residents[owner[second]],
                second_similarity=second_sim,
                template_id=self._tids[best],
                outside_id=outside_id,
                outside_similarity=outside_sim,
            )
