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

A door's search (``allowed``: a building's residents) takes its residents' row indices from a
cache (per mask, until rows are added or moved), sets those few rows aside to find the best
outside them, then searches only theirs: the same hits as masking all 100k rows per search,
which cost 0.65 ms at 100k (now 0.07; bench/face.py --search-only --baseline-rev).

Mean-centring (``centre_min``): with at least that many templates, scores are cosines after
subtracting the mean of the enrolled (L2-normalised) templates and re-normalising. SFace's
embeddings share a common component, so raw impostor cosines sit high; centring lowers the
stranger tail far more than it lowers genuine pairs (docs/faces.md). No second matrix: with
unit rows t and mean m, |t - m|^2 = 1 - 2 t.m + m.m, so one extra product per change gives
every row's norm, and a search is the same product with the centred probe u:
(t - m).u / |t - m| = (t.u - m.u) / |t - m|. The running sum is kept as templates come and
go, so the statistics follow enrolment without a reload.

Per-template cohort normalisation (``znorm_min``, docs/faces.md "Open-set face doors"): from
that many templates on, each template's centred cosine is divided by its spread against the
cohort (every template of the OTHER residents), and with ``znorm_shift`` its cohort mean is
subtracted first (classic Z-norm). A template that sits in a crowded part of face space (a
wide spread of scores against everyone) gets its scores shrunk, so one threshold means the
same stranger risk for every resident. The cohort's statistics are two sums over its centred
unit rows c: S1 = sum c and S2 = sum c c^T (128 x 128), so a template's cohort mean and
spread are c.S1 / K and c^T S2 c / K (its own resident's rows taken out), O(128^2) per
template and no scan of the cohort. Enrolment and deletion update S1/S2 and the new row's
statistics at once; the other rows' statistics (and the mean the scores are centred on) are
recomputed from scratch (a "rebase", ~1 s at 100k) once the gallery has changed by
``REBASE_FRACTION`` since the last one. A search is then the same product plus one scale per
row (and one offset with the shift): ~0.1 ms more at 100k.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

DIM = 128
SPLIT_MIN_ROWS = 20_000  # below this, handing half to a second thread costs more than it saves
REBASE_FRACTION = 0.05  # recompute the mean and every row's cohort statistics after this
MIN_SPREAD = 0.06  # floor of a template's cohort spread: real faces measured 0.076-0.122; an
# estimate far below that (a cohort that is mostly alike) would inflate every z-score of the row
CHUNK = 8192  # rows per block when recomputing (keeps temporaries small: RSS budget)


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
    def __init__(self, dim: int = DIM, capacity: int = 1024, centre_min: int | None = None,
                 znorm_min: int | None = None, znorm_shift: bool = False) -> None:
        self.dim = dim
        self.centre_min = centre_min  # None: plain cosine
        self.znorm_min = znorm_min  # None: no per-template cohort normalisation
        self.znorm_shift = znorm_shift
        self._sum = np.zeros(dim, np.float64)  # of all live rows: the mean follows enrolment
        self._mean: np.ndarray | None = None  # set while centring is active (the basis's)
        self._cnorm = np.empty(capacity, np.float32)  # |row - mean| per row
        self._scale = np.empty(capacity, np.float32)  # 1 / (|row - mean| * cohort spread)
        # cohort mean / spread per row (subtracted only with the shift; the spread is
        # 1 / (scale * |row - mean|), so the statistics need no arrays of their own)
        self._offset = np.zeros(capacity, np.float32)
        self._in_cohort = np.ones(capacity, bool)  # False: kept out of the cohort (bench fill)
        self._kind = "raw"  # raw / centred / znorm: the scale scores are on
        self._s1 = np.zeros(dim, np.float64)  # cohort sums over centred unit rows
        self._s2 = np.zeros((dim, dim), np.float64)
        self._k = 0  # cohort rows in the sums
        self._basis_n = 0  # rows when the basis was last computed
        self._changes = 0  # adds and removes since then
        self.basis_version = 0  # bumped on every rebase (the service stores all rows then)
        self._stale = True
        self._m = np.zeros((capacity, dim), np.float32)
        self._scores = np.empty(capacity, np.float32)  # search output, reused (under the lock)
        self._owner = np.zeros(capacity, np.int32)  # row -> index into _residents
        self._tids: list[str] = []  # row -> template id
        self._row: dict[str, int] = {}  # template id -> row
        self._residents: list[str] = []
        self._rindex: dict[str, int] = {}
        self._layout = 0  # bumped whenever rows are added or moved (door row caches)
        # a door's rows (allowed_mask -> their row indices, None: every row), per mask object
        # and layout: the search gathers a door's few scores instead of masking 100k rows
        self._door_rows: dict[int, tuple[np.ndarray, int, np.ndarray | None]] = {}
        self._lock = threading.RLock()  # search on the face thread, updates from the loop
        self._half = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-scan")

    def __len__(self) -> int:
        return len(self._tids)

    @property
    def layout(self) -> int:
        """Changes whenever rows are added, removed or moved (caches of masks and rows)."""
        return self._layout

    @property
    def residents(self) -> int:
        with self._lock:  # numpy, not a set of 100k Python ints (RSS: the daemon's budget)
            n = len(self)
            return int(np.count_nonzero(np.bincount(self._owner[:n]))) if n else 0

    def nbytes(self) -> int:
        per_row = (self._cnorm.nbytes + self._scale.nbytes + self._offset.nbytes
                   + self._in_cohort.nbytes)
        return self._m.nbytes + self._owner.nbytes + self._scores.nbytes + per_row

    def _resize_rows(self, cap: int) -> None:
        n = len(self)

        def grown(a: np.ndarray, fill: float) -> np.ndarray:
            b = np.full((cap, *a.shape[1:]), fill, a.dtype)
            b[:n] = a[:n]
            return b

        self._m = grown(self._m, 0)
        self._owner = grown(self._owner, 0)
        self._cnorm, self._scale = grown(self._cnorm, 1), grown(self._scale, 1)
        self._offset, self._in_cohort = grown(self._offset, 0), grown(self._in_cohort, True)
        self._scores = np.empty(cap, np.float32)

    def _grow(self, need: int) -> None:
        cap = self._m.shape[0]
        if need > cap:
            self._resize_rows(max(need, cap * 2))  # a bulk load gets its size, adds double

    def _resident_index(self, resident_id: str) -> int:
        i = self._rindex.get(resident_id)
        if i is None:
            i = self._rindex[resident_id] = len(self._residents)
            self._residents.append(resident_id)
        return i

    def add(self, template_id: str, resident_id: str, vec: np.ndarray) -> bool:
        """Add one template; False if it is already there (replaying a change is harmless)."""
        return self.add_many([template_id], [resident_id], np.asarray(vec, np.float32)[None]) == 1

    def add_many(self, tids: list[str], rids: list[str], vecs: np.ndarray,
                 cohort: bool = True) -> int:
        """``cohort=False``: the rows are searched but kept out of every other row's cohort
        statistics (the bench's synthetic fill; the box adds real residents only)."""
        vecs = np.asarray(vecs, np.float32).reshape(-1, self.dim)
        with self._lock:
            if len(self) == 0 and len(set(tids)) == len(tids) and vecs.flags.c_contiguous:
                # Start-up load: adopt the caller's matrix instead of copying 50 MB.
                n = len(vecs)
                self._m = vecs
                self._owner = np.array([self._resident_index(r) for r in rids], np.int32)
                self._tids = list(tids)
                self._row = {t: i for i, t in enumerate(tids)}
                self._sum = vecs.sum(axis=0, dtype=np.float64)
                self._scores = np.empty(n, np.float32)
                self._cnorm, self._scale = np.ones(n, np.float32), np.ones(n, np.float32)
                self._offset, self._in_cohort = np.zeros(n, np.float32), np.full(n, cohort)
                self._stale = True
                self._layout += 1
                return len(tids)
            fresh = [i for i, t in enumerate(tids) if t not in self._row]
            n = len(self)
            self._grow(n + len(fresh))
            for k, i in enumerate(fresh):
                row = n + k
                self._m[row] = vecs[i]
                self._owner[row] = self._resident_index(rids[i])
                self._in_cohort[row] = cohort
                self._row[tids[i]] = row
                self._tids.append(tids[i])
                self._sum += vecs[i]
            if fresh:
                self._layout += 1
                self._changed(np.arange(n, n + len(fresh)), added=True)
            return len(fresh)

    def remove(self, template_id: str) -> bool:
        with self._lock:
            row = self._row.get(template_id)
            if row is None:
                return False
            self._changed(np.array([row]), added=False)  # out of the sums while still here
            del self._row[template_id]
            self._layout += 1
            last = len(self) - 1
            self._sum -= self._m[row]
            if row != last:  # fill the hole with the last row: O(1), matrix stays contiguous
                for a in (self._m, self._owner, self._cnorm, self._scale, self._offset,
                          self._in_cohort):
                    a[row] = a[last]
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

    # --- normalisation: the basis (mean, cohort sums) and per-row statistics ------------

    def _wanted_kind(self) -> str:
        n = len(self)
        if self.centre_min is None or n < max(self.centre_min, 2):
            return "raw"
        cohort = int(np.count_nonzero(self._in_cohort[:n]))
        if self.znorm_min is not None and cohort >= max(self.znorm_min, 3):
            return "znorm"
        return "centred"

    @property
    def kind(self) -> str:
        """The scale scores are on: ``raw`` cosine, ``centred`` cosine or ``znorm``. Never
        rebases (the event loop asks this for operating points; a pending rebase runs on the
        face thread or in the faces service's worker thread)."""
        with self._lock:
            return self._wanted_kind() if self._stale else self._kind

    @property
    def centred(self) -> bool:
        return self.kind != "raw"

    def mean(self) -> np.ndarray | None:
        """The mean the scores are centred on (None without centring)."""
        with self._lock:
            self._refresh()
            return None if self._mean is None else self._mean.copy()

    def cohort_size(self) -> int:
        with self._lock:
            self._refresh()
            return self._k if self._kind == "znorm" else 0

    def set_mean(self, mean: np.ndarray | None) -> None:
        """Rebase on a given mean (the bench: the real residents' mean), until the next rebase."""
        with self._lock:
            self._refresh()
            if mean is not None and len(self) and self._kind != "raw":
                self._rebase(np.asarray(mean, np.float32))

    def _changed(self, rows: np.ndarray, *, added: bool) -> None:
        """Rows were added (already in place) or are about to be removed: keep the cohort
        sums and the new rows' statistics right, or ask for a rebase."""
        self._changes += len(rows)
        if self._stale:
            return
        if (self._wanted_kind() != self._kind
                or self._changes > max(REBASE_FRACTION * self._basis_n, 1.0)
                or (added and len(rows) > 64)):  # a bulk add: one rebase is cheaper
            self._stale = True
            return
        if self._kind == "raw":
            return
        if added:
            self._row_basis(rows)
        if self._kind == "znorm":
            sign = 1.0 if added else -1.0
            keep = rows[self._in_cohort[rows]]
            if len(keep):
                c = self._centred_rows(keep).astype(np.float64)
                self._s1 += sign * c.sum(axis=0)
                self._s2 += sign * (c.T @ c)
                self._k += int(sign) * len(keep)
        if added and self._kind == "znorm":
            self._row_stats(rows)

    def _refresh(self) -> None:
        if not self._stale:
            return
        self._stale = False
        n = len(self)
        self._kind = self._wanted_kind()
        if self._kind == "raw" or n == 0:
            self._kind, self._mean = "raw", None
            self._scale[:n], self._offset[:n] = 1.0, 0.0
            self._basis_n, self._changes = n, 0
            self.basis_version += 1
            return
        self._rebase((self._sum / n).astype(np.float32))

    def _rebase(self, mean: np.ndarray) -> None:
        """Recompute everything from the rows: the mean, each row's norm after centring, the
        cohort sums and each row's cohort statistics."""
        n = len(self)
        self._mean = mean
        self._row_basis(slice(0, n))  # a view of the matrix, not a 50 MB copy
        self._s1[:] = 0.0
        self._s2[:] = 0.0
        self._k = 0
        if self._kind == "znorm":
            for a in range(0, n, CHUNK):
                rows = np.arange(a, min(n, a + CHUNK))
                rows = rows[self._in_cohort[rows]]
                c = self._centred_rows(rows)
                self._s1 += c.sum(axis=0, dtype=np.float64)
                self._s2 += (c.T @ c).astype(np.float64)
                self._k += len(rows)
            for a in range(0, n, CHUNK):
                self._row_stats(np.arange(a, min(n, a + CHUNK)))
        self._basis_n, self._changes = n, 0
        self.basis_version += 1

    def _row_basis(self, rows: np.ndarray | slice) -> None:
        """Norm after centring (|t - m|^2 = 1 - 2 t.m + m.m for unit t) and the plain scale."""
        assert self._mean is not None
        m = self._mean
        sq = 1.0 - 2.0 * (self._m[rows] @ m) + float(m @ m)
        self._cnorm[rows] = np.sqrt(np.maximum(sq, 1e-12))
        self._scale[rows] = 1.0 / self._cnorm[rows]
        self._offset[rows] = 0.0

    def _centred_rows(self, rows: np.ndarray) -> np.ndarray:
        assert self._mean is not None
        return (self._m[rows] - self._mean) / self._cnorm[rows, None]

    def _row_stats(self, rows: np.ndarray) -> None:
        """Each row's cohort mean and spread: its scores against every cohort row of the other
        residents, from the sums (own resident's cohort rows taken out exactly)."""
        c = self._centred_rows(rows).astype(np.float64)
        s1 = c @ self._s1
        s2 = np.einsum("ij,ij->i", c @ self._s2, c)
        own1, own2, own_k = self._own_terms(rows, c)
        k = self._k - own_k
        ok = k >= 2
        kk = np.maximum(k, 1)
        mu = (s1 - own1) / kk
        sd = np.sqrt(np.maximum((s2 - own2) / kk - mu * mu, 0.0))
        sd = np.where(ok, np.maximum(sd, MIN_SPREAD), 1.0)
        mu = np.where(ok, mu, 0.0)
        self._scale[rows] = 1.0 / (self._cnorm[rows] * sd)
        self._offset[rows] = mu / sd

    def _own_terms(self, rows: np.ndarray, c: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: sum and sum of squares of its scores against its own resident's cohort
        rows, and how many there are (taken out of the cohort sums)."""
        n = len(self)
        owner = self._owner[:n]
        in_c = self._in_cohort[:n]
        own1 = np.zeros(len(rows))
        own2 = np.zeros(len(rows))
        own_k = np.zeros(len(rows), np.int64)
        counts = np.bincount(owner[in_c], minlength=len(self._residents))
        of = owner[rows]
        # The common case: the row is its resident's only cohort row (score 1 with itself).
        alone = (counts[of] == 1) & in_c[rows]
        own1[alone], own2[alone], own_k[alone] = 1.0, 1.0, 1
        multi = np.nonzero(~alone & (counts[of] > 0))[0]
        if len(multi):
            # Every (row, cohort row of the same resident) pair at once: cohort rows sorted by
            # owner, each row's mates a slice of that order (no Python loop over residents).
            o = of[multi]
            if len(multi) <= 8:  # an enrolment: the few residents' rows, no sort of 100k
                cidx = np.nonzero(np.isin(owner, o) & in_c)[0]
            else:
                cidx = np.nonzero(in_c)[0]
            order = cidx[np.argsort(owner[cidx], kind="stable")]
            sorted_owner = owner[order]
            lo = np.searchsorted(sorted_owner, o, "left")
            size = np.searchsorted(sorted_owner, o, "right") - lo
            li = np.repeat(multi, size)
            j = order[np.arange(int(size.sum())) + np.repeat(lo - np.cumsum(size) + size, size)]
            dots = np.einsum("ij,ij->i", c[li], self._centred_rows(j).astype(np.float64))
            own1[multi] = np.bincount(li, weights=dots, minlength=len(rows))[multi]
            own2[multi] = np.bincount(li, weights=dots * dots, minlength=len(rows))[multi]
            own_k[multi] = size
        return own1, own2, own_k

    def row_stats(self, template_ids: list[str] | None = None
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(template ids, cohort means, cohort spreads) of the given (default all) rows."""
        with self._lock:
            self._refresh()
            if template_ids is None:
                tids = list(self._tids)
                rows = np.arange(len(tids))
            else:
                tids = [t for t in template_ids if t in self._row]
                rows = np.array([self._row[t] for t in tids], np.int64)
            if self._kind != "znorm":
                return tids, np.zeros(len(tids), np.float32), np.ones(len(tids), np.float32)
            sd = 1.0 / (self._scale[rows] * self._cnorm[rows])
            return tids, (self._offset[rows] * sd).astype(np.float32), sd.astype(np.float32)

    def transform(self, vecs: np.ndarray) -> np.ndarray:
        """Vectors on the scale the gallery scores on (centred and re-normalised, or as is)."""
        with self._lock:
            self._refresh()
            v = np.asarray(vecs, np.float32)
            if self._mean is None:
                return v
            c = v - self._mean
            return c / np.maximum(np.linalg.norm(c, axis=-1, keepdims=True), 1e-12)

    def score_as_templates(self, vecs: np.ndarray, probe: np.ndarray,
                           resident_id: str | None = None) -> np.ndarray:
        """The probe's scores against ``vecs`` as if they were templates of ``resident_id``
        (a resident's negative examples), on the scale a search returns."""
        with self._lock:
            self._refresh()
            t = np.asarray(vecs, np.float32).reshape(-1, self.dim)
            tn = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
            u = self.transform(probe)
            if self._kind == "raw":
                return tn @ u
            c = self.transform(tn).astype(np.float64)
            s = c @ u
            if self._kind != "znorm":
                return s
            s1 = c @ self._s1
            s2 = np.einsum("ij,ij->i", c @ self._s2, c)
            k = self._k
            i = self._rindex.get(resident_id) if resident_id is not None else None
            if i is not None:
                n = len(self)
                mates = np.nonzero((self._owner[:n] == i) & self._in_cohort[:n])[0]
                if len(mates):
                    g = c @ self._centred_rows(mates).astype(np.float64).T
                    s1, s2, k = s1 - g.sum(axis=1), s2 - (g * g).sum(axis=1), k - len(mates)
            if k < 2:
                return s
            mu = s1 / k
            sd = np.maximum(np.sqrt(np.maximum(s2 / k - mu * mu, 0.0)), MIN_SPREAD)
            return (s - mu) / sd if self.znorm_shift else s / sd

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

    def _rows_in(self, allowed: np.ndarray, n: int) -> np.ndarray | None:
        """Row indices (ascending) of the residents in ``allowed``; None when that is every
        row. Cached per mask object until rows are added or moved (under the lock)."""
        hit = self._door_rows.get(id(allowed))
        if hit is not None and hit[0] is allowed and hit[1] == self._layout:
            return hit[2]
        mask = np.zeros(len(self._residents), bool)
        mask[: len(allowed)] = allowed[: len(self._residents)]
        rows_in = mask[self._owner[:n]]
        idx = None if rows_in.all() else np.flatnonzero(rows_in).astype(np.int32)
        if len(self._door_rows) >= 64:  # masks of doors no longer asked about
            self._door_rows.clear()
        self._door_rows[id(allowed)] = (allowed, self._layout, idx)  # holds it: id stays its
        return idx

    def rows_of(self, mask: np.ndarray) -> int:
        """Templates of the residents in an ``allowed_mask``."""
        with self._lock:
            n = len(self)
            return int(np.count_nonzero(mask[self._owner[:n]])) if n and len(mask) else 0

    def search(self, q: np.ndarray, *, exclude: str | None = None,
               allowed: np.ndarray | None = None) -> Hit | None:
        """Best template's identity and the best *other* identity (for the margin), scores
        on the gallery's scale (:attr:`kind`).

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
                scores *= self._scale[:n]
                if self._kind == "znorm" and self.znorm_shift:
                    scores -= self._offset[:n]
            # Blanked rows sit below any real score on every scale (z-scores go far below -1).
            low = float(scores.min()) - 2.0
            owner = self._owner[:n]
            if exclude is not None and exclude in self._rindex:
                scores[owner == self._rindex[exclude]] = low
            outside_id = outside_sim = None
            idx_in = None if allowed is None else self._rows_in(allowed, n)
            if idx_in is not None:
                # The best outside the door's residents: their (few) rows set aside, then
                # only theirs searched on (no 100k-row mask built per search).
                inside = scores[idx_in]
                scores[idx_in] = low - 1.0
                o = int(np.argmax(scores))
                if scores[o] > low:  # an outside row (the door's sit below low now)
                    outside_id, outside_sim = self._residents[owner[o]], float(scores[o])
                scores.fill(low)
                scores[idx_in] = inside
            best = int(np.argmax(scores))
            best_sim = float(scores[best])
            if best_sim <= low:
                return None
            # The best *other* identity: blank the best one's rows (the buffer is ours).
            scores[owner == owner[best]] = low - 1.0
            second: int | None = int(np.argmax(scores)) if n > 1 else None
            second_sim = None if second is None else float(scores[second])
            if second_sim is not None and second_sim <= low:
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
