"""The compiled merge and cheap filters (ranker/merge.py) against the numpy code they replaced."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from candidates.base import Proposals
from graph.snapshot import from_pairs
from graph.snapshot.csr import is_neighbour, pair_keys, rank_in_group
from ranker.merge import merge_block


def _ranks_in_groups(owner, cand, score):
    rows = np.flatnonzero(~np.isnan(score))
    rows = rows[np.lexsort((cand[rows], -score[rows], owner[rows]))]
    out = np.full(score.size, np.nan)
    out[rows] = rank_in_group(owner[rows])
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
    ranks = np.stack([_ranks_in_groups(owner, cand, score[:, j]) for j in range(len(props))], axis=1)
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
