"""Open-set pieces without models: the threshold from N, k-of-n fusion, the face tracker and
the gallery's mean-centring (against a direct computation)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.faces.gallery import Gallery
from edge.faces.openset import (
    FaceTracker,
    Frame,
    Fusion,
    Gaussian,
    fpir,
    per_pair_rate,
    threshold_for,
)

TAIL = Gaussian(0.05, 0.07)


@pytest.mark.parametrize("n", [1, 300, 10_000, 100_000])
def test_threshold_meets_the_target_at_each_gallery_size(n: int) -> None:
    t = threshold_for(TAIL, 1e-4, n)
    assert fpir(TAIL, t, n) == pytest.approx(1e-4, rel=1e-6)
    # A larger community needs a higher threshold for the same per-visit rate.
    assert t < threshold_for(TAIL, 1e-4, n * 10)
    assert per_pair_rate(1e-4, n) == pytest.approx(1e-4 / n, rel=1e-3)


def test_a_single_lucky_frame_is_not_a_grant() -> None:
    f = Fusion(3, 5)
    verdicts = [f.add(Frame("r1", 0.7 if i == 2 else 0.2, i == 2)) for i in range(5)]
    assert [v.reason for v in verdicts] == ["collecting"] * 4 + ["unknown_face"]
    assert verdicts[-1].resident_id is None and verdicts[-1].candidate_id == "r1"
    assert verdicts[-1].frames_used == 5


def test_k_of_n_agreeing_frames_grant_with_the_kth_score() -> None:
    f = Fusion(3, 5)
    sims = [0.61, 0.3, 0.72, 0.65, 0.5]
    out = [f.add(Frame("r1", s, s > 0.55)) for s in sims]
    assert out[3].reason == "match" and out[3].resident_id == "r1"
    assert out[3].score == 0.61 and out[3].votes == 3 and out[3].frames_used == 4


def test_two_residents_named_in_one_approach_is_a_conflict() -> None:
    f = Fusion(2, 5)
    for rid in ("r1", "r2", "r1"):
        v = f.add(Frame(rid, 0.7, True))
    assert v.reason == "conflict" and v.resident_id is None


def test_tracker_splits_a_second_person_in_the_same_spot() -> None:
    tr = FaceTracker(3, 5)
    a, b = np.eye(128, dtype=np.float32)[:2]
    box = (100.0, 100.0, 150.0, 150.0)
    t1 = tr.update(box, 0.0, a)
    assert tr.update((104.0, 102.0, 150.0, 150.0), 0.1, a) is t1  # same face, moved a bit
    t2 = tr.update(box, 0.2, b)  # someone else at the same place
    assert t2.id != t1.id and t2.new
    t3 = tr.update((400.0, 100.0, 150.0, 150.0), 0.3, b)  # far away: another track
    assert t3.id not in (t1.id, t2.id)
    assert tr.update(box, 5.0, b).id not in (t1.id, t2.id, t3.id)  # gone too long


def test_tracker_gap_counts_looks_that_saw_nobody_not_looks_not_taken() -> None:
    """Looks 1.5 s apart (an overloaded box dropped the frames in between) that see the same
    face continue its track: nothing was seen to end it. A look that saw nobody in between
    lets the 1 s gap end it as before; the appearance check still splits a new face."""
    tr = FaceTracker(3, 5)
    a, b = np.eye(128, dtype=np.float32)[:2]
    box = (100.0, 100.0, 150.0, 150.0)
    t1 = tr.update(box, 0.0, a)
    assert tr.update(box, 1.5, a) is t1 and tr.update(box, 3.0, a) is t1
    assert tr.update(box, 4.5, b) is not t1  # someone else, however the looks are spaced
    tr2 = FaceTracker(3, 5)
    s1 = tr2.update(box, 0.0, a)
    tr2.missed(0.8)  # a look that saw nobody: the face was gone
    s2 = tr2.update(box, 1.5, a)
    assert s2 is not s1 and s2.new
    assert tr2.update(box, 1.6, a) is s2  # within the gap: as always
    tr2.reset()
    assert tr2.update(box, 5.0, a) is not s2


def test_tracker_keeps_a_person_through_one_odd_frame() -> None:
    """A frame unlike the one before but like the one before that (a key frame, the head at
    the far end of a turn) is the same person: the track and its fusion go on. Someone
    unlike both of the track's last frames still starts a new track (bench/rush.py: the
    split cost one approach 6 looks instead of 3, docs/access.md)."""
    e = np.eye(128, dtype=np.float32)
    me, other = e[0], e[3]
    back = _unit(e[0] + e[1])  # me, seen a little differently
    odd = _unit(e[0] - 0.8 * e[1])  # me, but unlike ``back``
    assert float(odd @ me) >= 0.35 and float(odd @ back) < 0.35 and float(other @ me) < 0.35
    tr = FaceTracker(3, 5)
    box = (100.0, 100.0, 150.0, 150.0)
    t1 = tr.update(box, 0.0, me)
    assert tr.update(box, 0.07, back) is t1
    assert tr.update(box, 0.13, odd) is t1  # unlike the last frame, like the one before
    t1.fusion.add(Frame("r1", 0.7, True))
    assert tr.update(box, 0.2, me) is t1 and len(t1.fusion.window) == 1
    # Someone else, unlike both of the track's last two frames: a new track.
    t2 = tr.update(box, 0.27, other)
    assert t2 is not t1 and t2.new
    # The old rule (the last frame only) split on the odd frame.
    FaceTracker.RECENT = 1
    try:
        old = FaceTracker(3, 5)
        o1 = old.update(box, 0.0, me)
        old.update(box, 0.07, back)
        assert old.update(box, 0.13, odd) is not o1
    finally:
        FaceTracker.RECENT = 2


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_centred_search_equals_the_direct_centred_cosine() -> None:
    rng = np.random.default_rng(3)
    common = _unit(rng.normal(size=128))
    vecs = _unit(0.8 * common + 0.2 * _unit(rng.normal(size=(300, 128))))
    g = Gallery(capacity=8, centre_min=100)
    g.add_many([f"t{i}" for i in range(300)], [f"r{i}" for i in range(300)], vecs.copy())
    q = _unit(0.8 * common + 0.2 * _unit(rng.normal(size=128)))
    m = vecs.mean(axis=0)
    direct = _unit(vecs - m) @ _unit(q - m)
    hit = g.search(q)
    assert hit is not None and g.centred
    assert hit.resident_id == f"r{int(np.argmax(direct))}"
    assert hit.similarity == pytest.approx(float(direct.max()), abs=1e-4)
    # The statistics follow enrolment: removing rows changes the mean used.
    for i in range(50):
        g.remove(f"t{i}")
    m2 = vecs[50:].mean(axis=0)
    assert np.allclose(g.mean(), m2, atol=1e-5)
    direct2 = _unit(vecs[50:] - m2) @ _unit(q - m2)
    assert g.search(q).similarity == pytest.approx(float(direct2.max()), abs=1e-4)
    # Raw cosine below centre_min; the raw scores of these vectors sit far higher.
    small = Gallery(centre_min=100)
    small.add_many(["a", "b"], ["ra", "rb"], vecs[:2].copy())
    assert not small.centred and small.search(vecs[0]).similarity == pytest.approx(1.0, abs=1e-5)


def test_threshold_counts_templates_not_residents() -> None:
    """A stranger meets every template (a resident's best one counts): 100 residents with 3
    photos each are 300 chances, and a door's set counts its own templates."""
    from edge.faces.config import FacesConfig
    from edge.faces.openset import operating_point

    cfg = FacesConfig()
    one = operating_point(cfg, 100, 100, 1e-4)
    three = operating_point(cfg, 100, 300, 1e-4)
    assert one and three and three.threshold > one.threshold
    assert three.threshold == pytest.approx(operating_point(cfg, 300, 300, 1e-4).threshold)
    assert (three.residents, three.templates) == (100, 300)
    g = Gallery(dim=4)
    rng = np.random.default_rng(1)
    for i, rid in enumerate(["a", "a", "a", "b", "c"]):
        g.add(f"t{i}", rid, rng.normal(size=4).astype(np.float32))
    assert g.rows_of(g.allowed_mask(frozenset({"a", "c"}))) == 4
    assert g.rows_of(g.allowed_mask(frozenset({"b"}))) == 1
