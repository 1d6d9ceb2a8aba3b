"""Gallery 1:N search against a brute-force reference: best identity, best other identity."""

from __future__ import annotations

import numpy as np
import pytest

from edge.faces import gallery
from edge.faces.gallery import Gallery


def reference(m: np.ndarray, owners: list[str], q: np.ndarray, exclude: str | None = None):
    s = m @ q
    best_by: dict[str, float] = {}
    for o, v in zip(owners, s.tolist(), strict=True):
        if o != exclude:
            best_by[o] = max(best_by.get(o, -9.0), v)
    ranked = sorted(best_by.items(), key=lambda kv: -kv[1])
    return ranked[0], (ranked[1] if len(ranked) > 1 else None)


@pytest.mark.parametrize("split_min_rows", [20_000, 100])  # one scan / two half-scans
def test_search_matches_brute_force_through_adds_and_removes(split_min_rows, monkeypatch) -> None:
    monkeypatch.setattr(gallery, "SPLIT_MIN_ROWS", split_min_rows)
    rng = np.random.default_rng(3)
    m = rng.normal(size=(3000, 128)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    owners = [f"r{i % 700}" for i in range(3000)]  # several templates per resident
    g = Gallery(capacity=16)
    g.add_many([f"t{i}" for i in range(2000)], owners[:2000], m[:2000])  # grows the buffer
    for i in range(2000, 3000):  # incremental adds (the buffer doubles)
        g.add(f"t{i}", owners[i], m[i])
    for i in range(0, 3000, 7):  # deletions move rows around
        g.remove(f"t{i}")
    keep = [i for i in range(3000) if i % 7]
    mk, ok = m[keep], [owners[i] for i in keep]
    for k in range(30):
        q = mk[k * 50] + rng.normal(0, 0.3, 128).astype(np.float32)
        q /= np.linalg.norm(q)
        exclude = ok[k * 50] if k % 3 == 0 else None
        (rid, sim), second = reference(mk, ok, q, exclude)
        hit = g.search(q, exclude=exclude)
        assert hit is not None and hit.resident_id == rid
        assert abs(hit.similarity - sim) < 1e-5
        assert (hit.second_id, round(hit.second_similarity, 5)) == (
            second[0], round(second[1], 5))
        assert exclude is None or exclude not in (hit.resident_id, hit.second_id)


def test_one_identity_and_empty() -> None:
    g = Gallery()
    assert g.search(np.ones(128, np.float32)) is None
    v = np.zeros(128, np.float32)
    v[0] = 1
    g.add("a", "r1", v)
    g.add("b", "r1", v)
    hit = g.search(v)
    assert (hit.resident_id, hit.second_id, hit.second_similarity) == ("r1", None, None)
    assert g.search(v, exclude="r1") is None
