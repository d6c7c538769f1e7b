"""The compiled feature columns (ranker/columns.py) against the numpy block code they replaced."""

from __future__ import annotations

import numpy as np
import pytest

from candidates.ppr import forward_push_block
from graph.snapshot.format import EVENT_CODE
from ranker.feature_names import FEATURE_NAMES, SOURCE_NAMES
from ranker.features import FeatureContext
from sim.world import WorldConfig, generate_world, world_snapshot
from tests.features_reference import reference_features


@pytest.fixture(scope="module")
def snap():
    """A simulated world (profiles, some missing; timed ties) with every kind of event, some in one second."""
    world = generate_world(WorldConfig(num_users=1500, seed=5))
    s = world_snapshot(world)
    rng = np.random.default_rng(5)
    m = 6000
    ts = np.sort(rng.uniform(world.ts.max() - 60 * 86_400, world.ts.max() + 30 * 86_400, m))
    ts[::7] = np.floor(ts[::7])   # events on a whole second, and one right at the cut times below
    s.events = {"type": rng.choice([EVENT_CODE[k] for k in ("send", "accept", "decline", "impression", "interaction")],
                                   m).astype(np.int8),
                "src": rng.integers(0, 300, m).astype(np.int32),   # the viewers below: they act
                "dst": rng.integers(0, s.num_users, m).astype(np.int32), "ts": ts,
                "position": np.zeros(m, dtype=np.int16)}
    s.numeric["lat"][rng.random(s.num_users) < 0.1] = np.nan
    s.categorical["school"][rng.random(s.num_users) < 0.2] = -1
    s.categorical["age_group"][rng.random(s.num_users) < 0.2] = -1
    return s


def _block(snap, rng, viewers: int):
    """Viewers (one twice) and their candidates: friends of friends, random users, the viewer, a
    candidate listed twice; rows not grouped by viewer."""
    users = rng.integers(0, 300, viewers)
    users = np.concatenate([users, users[:1]])
    owner, cands = [], []
    for o, v in enumerate(users.tolist()):
        friends = snap.indices[snap.indptr[v]:snap.indptr[v + 1]]
        fof = np.unique(np.concatenate([snap.indices[snap.indptr[f]:snap.indptr[f + 1]] for f in friends] or [[]]))
        mine = np.concatenate([fof[:80], rng.integers(0, snap.num_users, 30), [v], fof[:2]]).astype(np.int64)
        owner += [o] * mine.size
        cands += mine.tolist()
    shuffle = rng.permutation(len(cands))
    return users, np.array(owner, dtype=np.int64)[shuffle], np.array(cands, dtype=np.int64)[shuffle]


@pytest.mark.parametrize("at_cut", [False, True])
@pytest.mark.parametrize("with_ranks,with_push,with_emb", [(False, False, False), (True, True, True)])
def test_columns_are_bit_identical_to_the_numpy_block_code(snap, at_cut, with_ranks, with_push, with_emb):
    rng = np.random.default_rng(int(at_cut) + 2 * int(with_ranks))
    emb = rng.standard_normal((snap.num_users, 8)).astype(np.float32) if with_emb else None
    ctx = FeatureContext(snap, emb)
    t = float(snap.events["ts"][3500]) if at_cut else float(snap.events["ts"].max()) + 10.0   # an event at t
    users, owner, cands = _block(snap, rng, 15)
    ranks = None
    if with_ranks:   # two sources' ranks, NaN where a source did not propose the row
        ranks = {name: np.where(rng.random(cands.size) < 0.5, rng.integers(0, 100, cands.size), np.nan)
                 for name in SOURCE_NAMES[:2]}
    at = ctx.graph_at(t)
    push = forward_push_block(at.g.indptr, at.g.indices, at.deg, users, 0.15, 1e-4) if with_push else None
    grouped = np.lexsort((cands, owner))   # also as candidate_block lists rows: by viewer, then candidate
    for rows in (np.arange(cands.size), grouped):
        block_ranks = {k: v[rows] for k, v in ranks.items()} if ranks else None
        got = ctx.block_features(users, owner[rows], cands[rows], t, block_ranks, push)
        want = reference_features(ctx, users, owner[rows], cands[rows], t, block_ranks, push)
        assert got.dtype == want.dtype == np.float32
        for j, name in enumerate(FEATURE_NAMES):
            np.testing.assert_array_equal(got[:, j], want[:, j], err_msg=name)   # exact: the same operations
    informative = [name for j, name in enumerate(FEATURE_NAMES) if np.unique(got[:, j]).size > 1]
    for name in ("pair_impressions", "viewer_sends_7d", "cand_accept_rate", "log_cand_pending", "age_gap",
                 "same_school", "ppr_rank", "cand_recent_pct_in_list", "cand_degree_pct_in_list", "log_paths3",
                 "cand_recent_partner_deg"):
        assert name in informative, name   # the test exercises every kind of column


def test_the_compiled_pass_writes_where_its_layout_argument_says(snap, monkeypatch):
    """The column layout reaches the compiled pass as an argument. As module globals numba's on-disk
    cache would freeze it, and a column list changed in ranker/feature_names.py would be written at its
    old positions by a stale __pycache__ (seen: every source column off by two)."""
    from ranker import columns

    rng = np.random.default_rng(9)
    users, owner, cands = _block(snap, rng, 6)
    t = float(snap.events["ts"].max()) + 10.0
    want = FeatureContext(snap).block_features(users, owner, cands, t)
    names = list(FEATURE_NAMES)
    i, j = names.index("mutual"), names.index("in_fof")
    names[i], names[j] = "in_fof", "mutual"   # mutual written where in_fof was, and the reverse
    monkeypatch.setattr(columns, "LAYOUT", columns.layout(tuple(names)))
    got = FeatureContext(snap).block_features(users, owner, cands, t)
    assert np.unique(want[:, i]).size > 1   # mutual varies here
    np.testing.assert_array_equal(got[:, j], want[:, i])
    np.testing.assert_array_equal(got[:, i], 0.0)   # in_fof's new place: no source proposed these rows
