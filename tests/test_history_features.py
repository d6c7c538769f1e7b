"""The ranker's features as of a time t: no leakage (unchanged when later ties or interactions are
added), paths of length 3 against the cube of the adjacency matrix, counts by hand, times only through
differences."""

from __future__ import annotations

import numpy as np
import pytest

from candidates.types import Candidate
from graph.snapshot import as_of, from_pairs
from ranker.features import FEATURE_NAMES, FeatureContext
from tests.timed_graphs import random_timed_graph, said


def test_features_at_t_do_not_change_when_later_ties_are_added():
    src, dst, ts = random_timed_graph()
    t = 60.0
    now = from_pairs(src, dst, list(ts))
    # later ties touching everyone, between viewers and candidates' neighbourhoods alike
    extra_src = src + [str(i) for i in range(0, 60, 2)]
    extra_dst = dst + [str(i) for i in range(1, 60, 2)]
    later = from_pairs(extra_src, extra_dst, list(ts) + [80.0 + i for i in range(30)])
    assert later.num_edges > now.num_edges
    viewer = now.index_of("3")
    cands = [Candidate.of(now.external_id(i), i, "fof" if i % 2 else "ppr", float(i)) for i in range(10, 40)]
    a = FeatureContext(now).features(viewer, cands, t)
    b = FeatureContext(later).features(viewer, cands, t)
    c = FeatureContext(as_of(later, t)).features(viewer, cands, t)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(a, FeatureContext(later).features(viewer, cands, 95.0))  # later t does see them


def test_paths_of_length_3_match_the_cube_of_the_adjacency_matrix(monkeypatch):
    import ranker.paths
    from graph.snapshot.csr import thread_scratch

    src, dst, _ = random_timed_graph()
    snap = from_pairs(src, dst)
    n = snap.num_users
    a = np.zeros((n, n))
    a[np.repeat(np.arange(n), np.diff(snap.indptr)), snap.indices] = 1.0
    deg = a.sum(1)
    dinv = np.diag(1 / np.sqrt(np.maximum(deg, 1)))
    paths, norm = np.linalg.matrix_power(a, 3), np.linalg.matrix_power(dinv @ a @ dinv, 3)
    viewer = snap.index_of("3")
    cands = np.array([i for i in range(n) if i != viewer and not a[viewer, i]])
    f = FeatureContext(snap).pair_features(viewer, cands, 0.0)
    assert np.allclose(f[:, FEATURE_NAMES.index("log_paths3")], np.log1p(paths[viewer, cands]), atol=1e-5)
    assert np.allclose(f[:, FEATURE_NAMES.index("paths3_norm")], norm[viewer, cands], atol=1e-6)
    # a candidate with more neighbours than the sample: its evenly spaced neighbours, the sum scaled up
    monkeypatch.setattr(ranker.paths, "PATHS3_SAMPLE", 3)
    hub = int(cands[np.argmax(deg[cands])])
    row = snap.indices[snap.indptr[hub]:snap.indptr[hub + 1]]
    d = row.size
    sample = row[np.arange(3) * d // 3]
    walks = np.linalg.matrix_power(a, 2)[viewer]
    got = FeatureContext(snap).pair_features(viewer, np.array([hub]), 0.0)[0]
    assert d > 3
    assert got[FEATURE_NAMES.index("log_paths3")] == pytest.approx(np.log1p(walks[sample].sum() * d / 3), rel=1e-5)
    buf, mark = thread_scratch(n, 3)
    assert not buf.any() and not mark.any()   # the per-thread scratch is left zeroed for the next call


def test_paths_of_length_3_are_the_same_when_threads_compute_them_at_once():
    from concurrent.futures import ThreadPoolExecutor

    src, dst, _ = random_timed_graph(n=300, m=3000)
    snap = from_pairs(src, dst)
    ctx = FeatureContext(snap)
    cols = [FEATURE_NAMES.index("log_paths3"), FEATURE_NAMES.index("paths3_norm")]
    cands = np.arange(snap.num_users)

    def paths(viewer: int) -> np.ndarray:
        return ctx.pair_features(viewer, cands[cands != viewer], 0.0)[:, cols]

    alone = [paths(v) for v in range(40)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(paths, list(range(40)) * 5))
    assert all(np.array_equal(a, b) for a, b in zip(alone * 5, together, strict=True))
    assert any(a.any() for a in alone)


def test_tie_strength_features_count_interactions_before_t_by_hand():
    # viewer v, mutual friends m1 and m2 of candidate c; v talked 3 times to m1, m2 twice to c
    snap = from_pairs(["v", "v", "m1", "m2", "c"], ["m1", "m2", "c", "c", "x"], [1.0, 1.0, 1.0, 1.0, 1.5])
    rows = [("v", "m1", 2.0), ("m1", "v", 3.0), ("v", "m1", 4.0), ("m2", "c", 5.0), ("c", "m2", 6.0),
            ("v", "m2", 50.0)]   # at t=50: not before t=50, never counted
    snap.events = said(snap, rows)
    f = FeatureContext(snap).pair_features(snap.index_of("v"), np.array([snap.index_of("c")]), 50.0)[0]
    col = {n: f[i] for i, n in enumerate(FEATURE_NAMES)}
    assert col["viewer_side_strength"] == pytest.approx(np.log1p(3) + 0.0)   # v-m1: 3, v-m2: none before t
    assert col["cand_side_strength"] == pytest.approx(0.0 + np.log1p(2))      # m1-c: none, m2-c: 2
    # the middle recency window here starts before the first interaction: v took part in 3, c in 2
    assert col["viewer_interactions_w5"] == pytest.approx(np.log1p(3))
    assert col["cand_interactions_w5"] == pytest.approx(np.log1p(2))
    later = FeatureContext(snap).pair_features(snap.index_of("v"), np.array([snap.index_of("c")]), 51.0)[0]
    assert later[FEATURE_NAMES.index("viewer_side_strength")] == pytest.approx(np.log1p(3) + np.log1p(1))


def test_recent_span_feature_counts_ties_in_the_last_tenth_of_the_graphs_time_by_hand():
    # the first tie at 0, t = 100: the window is [90, 100); c made ties at 95 and 99 (and 50), x at 20
    snap = from_pairs(["a", "c", "c", "c", "x"], ["b", "d", "e", "f", "y"], [0.0, 95.0, 99.0, 50.0, 20.0])
    f = FeatureContext(snap).pair_features(snap.index_of("a"), np.array([snap.index_of(u) for u in "cxf"]), 100.0)
    assert f[:, FEATURE_NAMES.index("cand_new_ties_span10")].tolist() == [2.0, 0.0, 0.0]
    # at t = 99 the window is [89.1, 99): the tie at 99 is not yet formed
    f = FeatureContext(snap).pair_features(snap.index_of("a"), np.array([snap.index_of("c")]), 99.0)
    assert f[0, FEATURE_NAMES.index("cand_new_ties_span10")] == 1.0


def test_interaction_features_at_t_do_not_change_when_later_interactions_are_added():
    src, dst, ts = random_timed_graph()
    rng = np.random.default_rng(1)
    past = [(src[i], dst[i], float(t)) for i, t in zip(rng.integers(0, len(src), 300), rng.random(300) * 60,
                                                    strict=True)]
    future = [(src[i], dst[i], 60.0 + float(t)) for i, t in zip(rng.integers(0, len(src), 300),
                                                               rng.random(300) * 40, strict=True)]
    now, later = from_pairs(src, dst, list(ts)), from_pairs(src, dst, list(ts))
    now.events, later.events = said(now, past), said(later, past + future)
    viewer = now.index_of("3")
    cands = np.arange(10, 40)
    a = FeatureContext(now).pair_features(viewer, cands, 60.0)
    assert np.array_equal(a, FeatureContext(later).pair_features(viewer, cands, 60.0))
    assert a[:, FEATURE_NAMES.index("viewer_side_strength")].any()
    assert not np.array_equal(a, FeatureContext(later).pair_features(viewer, cands, 95.0))


def test_features_depend_on_times_only_through_differences():
    """A graph whose clock starts elsewhere (relative seconds from 0, as some SNAP files count, or epoch
    seconds) gives the same features: every tie, interaction and t shifted by the same whole seconds."""
    src, dst, ts = random_timed_graph()
    ts = np.floor(ts * 1000)   # whole seconds: shifted sums stay exact in float64
    rows = list(zip(src[::3], dst[::3], (ts[::3] + 7).tolist(), strict=True))
    viewer_id, t, shift = "3", 60_000.0, 1_300_000_000.0
    feats = []
    for d in (0.0, shift):
        snap = from_pairs(src, dst, list(ts + d))
        snap.events = said(snap, [(a, b, x + d) for a, b, x in rows])
        viewer = snap.index_of(viewer_id)
        cands = [Candidate.of(snap.external_id(i), i, "fof" if i % 2 else "ppr", float(i)) for i in range(10, 40)]
        feats.append(FeatureContext(snap).features(viewer, cands, t + d))
    read = [FEATURE_NAMES.index(c) for c in ("cand_side_strength", "recent_mutual",
                                             "cand_since_last_tie", "cand_age_share", "cand_new_ties_span10")]
    assert (feats[0][:, read] > 0).any(axis=0).all()   # the time-reading columns are not all zero
    assert np.array_equal(feats[0], feats[1])
