"""Every feature column's values on a fixed small graph, against the ones recorded with this FEATURE_VERSION.

A ranker is served only over the feature version it was trained on (ranker/serve.py), so a change to what
a column means must come with a new FEATURE_VERSION (ranker/feature_names.py). This test is what makes that
hard to forget: change a formula, a window or a tie order, and it fails until the version is bumped and the
recorded values are regenerated:

    PYTHONPATH=. .venv/bin/python -m tests.test_feature_golden --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from candidates.types import Candidate
from graph.snapshot.build import build_csr, empty_tables
from graph.snapshot.format import EVENT_CODE, Snapshot, empty_columns
from ranker.feature_names import FEATURE_NAMES, FEATURE_VERSION
from ranker.features import FeatureContext

GOLDEN = Path(__file__).with_name("feature_golden.json")
N, DAY = 80, 86_400.0


def _snapshot() -> tuple[Snapshot, np.ndarray]:
    """80 users: ties over 100 days (some pairs repeated), profiles with gaps, every kind of event, and
    8-dimensional embeddings. Built here, not by the simulator, so that only a feature change moves it."""
    rng = np.random.default_rng(20261207)
    m = 600
    src, dst = rng.integers(0, N, m), (rng.integers(0, N, m) ** 1.3 % N).astype(np.int64)   # some hubs
    ts = 1.7e9 + np.sort(rng.uniform(0, 100 * DAY, m))
    indptr, indices, since = build_csr(N, src, dst, ts)
    numeric, categorical, vocab = empty_columns(N)
    numeric.update(created_at=1.7e9 - rng.uniform(0, 400 * DAY, N), lat=rng.uniform(40, 50, N),
                   lon=rng.uniform(0, 10, N))
    numeric["lat"][::9] = np.nan
    for col, k in (("school", 4), ("employer", 5), ("city", 3), ("age_group", 4), ("language", 2)):
        categorical[col] = np.where(rng.random(N) < 0.15, -1, rng.integers(0, k, N)).astype(np.int32)
        vocab[col] = [f"{col}-{i}" for i in range(k)]
    requests, blocks, _ = empty_tables()
    e = 3000
    kinds = [EVENT_CODE[k] for k in ("send", "accept", "decline", "impression", "interaction")]
    events = {"type": rng.choice(kinds, e).astype(np.int8), "src": rng.integers(0, N, e).astype(np.int32),
              "dst": rng.integers(0, N, e).astype(np.int32), "ts": np.floor(1.7e9 + rng.uniform(40, 110, e) * DAY),
              "position": rng.integers(0, 20, e).astype(np.int16)}
    snap = Snapshot(np.arange(N, dtype=np.int64), indptr, indices, since, numeric, categorical, vocab,
                    np.zeros(N, dtype=bool), requests, blocks, events, meta={"source": "feature golden"})
    return snap, rng.standard_normal((N, 8)).astype(np.float32)


def _candidates(snap: Snapshot, viewer: int, rng: np.random.Generator) -> list[Candidate]:
    """Friends of friends by mutual count, a PageRank-like source whose scores tie in places (the rank
    columns' tie order is part of what they mean) and the most befriended users, merged as the pipeline
    merges."""
    friends = snap.indices[snap.indptr[viewer]:snap.indptr[viewer + 1]]
    reach = np.concatenate([snap.indices[snap.indptr[f]:snap.indptr[f + 1]] for f in friends] or [[]])
    users, mutual = np.unique(reach[(reach != viewer) & ~np.isin(reach, friends)], return_counts=True)
    out = {int(u): Candidate.of(str(u), int(u), "fof", float(c)) for u, c in zip(users[:12], mutual[:12],
                                                                                  strict=True)}
    degree = np.diff(snap.indptr)
    proposals = [("ppr", u, float(rng.integers(1, 4)) / 10) for u in rng.choice(N, 8, replace=False).tolist()]
    proposals += [("popular", int(u), float(degree[u])) for u in np.argsort(-degree, kind="stable")[:6]]
    for source, u, score in proposals:
        c = Candidate.of(str(u), u, source, score)
        out[u] = out[u].merged(c) if u in out else c
    return list(out.values())


def features() -> np.ndarray:
    """The rows the golden file records: 6 viewers' candidates, at a time inside the ties' span."""
    snap, emb = _snapshot()
    ctx = FeatureContext(snap, emb)
    rng = np.random.default_rng(7)
    t = 1.7e9 + 80 * DAY
    return np.concatenate([ctx.features(v, _candidates(snap, v, rng), t) for v in (0, 1, 2, 5, 11, 40)])


def test_feature_values_are_those_recorded_for_this_feature_version():
    golden = json.loads(GOLDEN.read_text())
    regenerate = "regenerate tests/feature_golden.json (python -m tests.test_feature_golden --write)"
    assert golden["feature_version"] == FEATURE_VERSION, f"FEATURE_VERSION is now {FEATURE_VERSION}: {regenerate}"
    assert golden["names"] == list(FEATURE_NAMES), f"the feature columns changed: {regenerate}"
    got, want = features(), np.array(golden["rows"], dtype=np.float64)
    assert got.shape == want.shape
    changed = [name for j, name in enumerate(FEATURE_NAMES)
               if not np.allclose(got[:, j], want[:, j], rtol=1e-5, atol=1e-6)]
    assert not changed, (f"columns {changed} no longer compute what feature version {FEATURE_VERSION} recorded: "
                         f"bump FEATURE_VERSION in ranker/feature_names.py (rankers trained on the old values "
                         f"must not be served over the new ones), then {regenerate}")


def test_the_recorded_rows_exercise_the_columns():
    """A column constant over every recorded row could change meaning unseen."""
    x = features()
    constant = [name for j, name in enumerate(FEATURE_NAMES) if np.ptp(x[:, j]) == 0]
    # constant by construction: no ann, cold-start or trending proposals
    assert set(constant) <= {f"{kind}_{s}" for s in ("coldstart", "ann", "trending")
                             for kind in ("in", "inv_rank")}, constant


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({"feature_version": FEATURE_VERSION, "names": list(FEATURE_NAMES),
                                  "rows": [[float(f"{v:.7g}") for v in row] for row in features()]}) + "\n")
    print(f"wrote {GOLDEN}")
