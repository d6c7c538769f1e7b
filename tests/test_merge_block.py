"""The compiled merge and cheap filters (ranker/merge.py) against the numpy code they replaced."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import rankdata

from candidates.base import Proposals
from graph.snapshot import from_pairs
from graph.snapshot.csr import is_neighbour, pair_keys
from ranker.merge import merge_block


def _ranks_in_groups(owner, score):
    """Each owner's rows ranked by score, equal scores sharing the best rank (scipy's "min" ranks)."""
    out = np.full(score.size, np.nan)
    for o in np.unique(owner):
        rows = np.flatnonzero((owner == o) & ~np.isnan(score))
        if rows.size:
            out[rows] = rankdata(-score[rows], method="min") - 1
    return out


def reference_merge(props, users, snap):
    """candidate_block's merge as it was (numpy): the oracle."""
    n = snap.num_users
    src = np.concatenate([np.full(p.cand.size, j) for j, p in enumerate(props)]).astype(np.int64)
    keys = np.concatenate([pair_keys(p.owner, p.cand, n) for p in props])
    uniq, inv = np.unique(keys, return_inverse=True)
    score = np.full((uniq.size, len(props)), np.nan)
    score[inv, src] = np.concatenate([p.score for p in props])
    src_row = np.full((uniq.size, len(props)), -1, dtype=np.int64)
    src_row[inv, src] = np.concatenate([np.arange(p.cand.size) for p in props])
    owner, cand = uniq // n, uniq % n
    is_friend = is_neighbour(snap.indptr, snap.indices, users, owner, cand)
    is_self = cand == users[owner]
    is_friend &= ~is_self
    opted_out = snap.opted_out[cand] & ~is_self & ~is_friend
    removed = Counter({k: int(v.sum()) for k, v in (("self", is_self), ("already_friends", is_friend),
                                                    ("opted_out", opted_out)) if v.any()})
    kept = np.flatnonzero(~is_self & ~is_friend & ~opted_out)
    owner, cand, score, src_row = owner[kept], cand[kept], score[kept], src_row[kept]
    ranks = np.stack([_ranks_in_groups(owner, score[:, j]) for j in range(len(props))], axis=1)
    return owner, cand, score, src_row, ranks, removed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_is_identical_to_the_numpy_code(seed):
    rng = np.random.default_rng(seed)
    n = 300
    a, b = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    snap = from_pairs([str(x) for x in a[a != b]], [str(x) for x in b[a != b]])
    snap.opted_out[rng.random(snap.num_users) < 0.1] = True
    users = rng.integers(0, snap.num_users, 6)
    props = []
    for size in (200, 150, 0, 120):   # one source proposes nothing
        owner = np.sort(rng.integers(0, users.size, size))
        cand = rng.integers(0, snap.num_users, size)   # repeats, the viewers themselves, friends, opted-out users
        cand[:5] = users[owner[:5]]
        score = np.round(rng.random(size), 1)   # ties
        props.append(Proposals(owner, cand, score, lambda rows: [None] * len(rows)))
    m = merge_block(props, users, snap)
    want = reference_merge(props, users, snap)
    for got, w in zip((m.owner, m.cand, m.score, m.src_row, m.rank), want[:5], strict=True):
        np.testing.assert_array_equal(got, w)
    assert m.removed == want[5] and set(m.removed) == {"self", "already_friends", "opted_out"}
    assert np.isnan(m.rank[:, 2]).all() and not np.isnan(m.rank[:, 0]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_ranks_are_scipys_min_ranks_per_owner(seed):
    from graph.snapshot.csr import shared_ranks

    rng = np.random.default_rng(seed)
    owner = rng.integers(0, 7, 500)   # owners in any order
    score = np.round(rng.random(500), 1)
    score[rng.random(500) < 0.1] = np.nan
    np.testing.assert_array_equal(shared_ranks(owner, score), _ranks_in_groups(owner, score))


def test_rrf_gives_equal_source_scores_one_rank_and_keeps_merge_order_at_equal_fusion():
    from candidates.fusion import RRF_K, rrf_rank
    from candidates.types import Candidate

    # fof: 9 and 2 tie at 3 mutual friends, 5 follows; ppr proposes 7 alone. 9 and 2 share fof's first rank,
    # as 7 holds ppr's: all three fuse to 1/(RRF_K + 1), and keep the order they came in, not by index
    cands = [Candidate.of(str(i), i, s, v) for i, s, v in ((9, "fof", 3.0), (2, "fof", 3.0), (5, "fof", 1.0),
                                                           (7, "ppr", 0.4))]
    got = rrf_rank("v", cands)
    assert [c.index for c in got] == [9, 2, 7, 5]
    assert [c.score("rrf") for c in got] == pytest.approx([1 / (RRF_K + 1)] * 3 + [1 / (RRF_K + 3)])


def test_one_pass_source_ranks_match_each_sources_own_column():
    """source_fusion_ranks reads every source in one pass over the candidates: each source's ranks are
    those of its own score column (NaN where it did not propose), and a source nobody proposed is all NaN."""
    from candidates.fusion import fusion_ranks, source_fusion_ranks
    from candidates.types import Candidate

    rng = np.random.default_rng(3)
    cands = []
    for i in range(300):
        c = Candidate.of(str(i), i, "fof", float(rng.integers(0, 5)))
        if rng.random() < 0.4:
            c = c.merged(Candidate.of(str(i), i, "ppr", float(rng.random())))
        if rng.random() < 0.5:
            c = c.with_score("rrf", 1.0)   # a stage's score, not a source's
        cands.append(c)
    got = source_fusion_ranks(cands, ("fof", "ppr", "ann"))
    for name in ("fof", "ppr"):
        column = np.array([c.scores.get(name, np.nan) for c in cands])
        np.testing.assert_array_equal(got[name], _ranks_in_groups(np.zeros(300, dtype=np.int64), column))
        np.testing.assert_array_equal(fusion_ranks(cands, name), got[name])
    assert np.isnan(got["ann"]).all() and got["ann"].size == 300
    assert np.isnan(got["ppr"]).sum() == sum("ppr" not in c.sources for c in cands) > 0
