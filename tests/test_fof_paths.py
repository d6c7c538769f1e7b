"""The compiled two-hop path listing of candidates/fof.py against the numpy expansion it replaced."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from candidates.fof import fof_block, score_paths
from graph.snapshot import from_pairs
from graph.snapshot.csr import group_starts, is_neighbour, rank_in_group, row_positions, thread_scratch


def reference_fof_block(snap, users, degree, max_friend_degree, max_two_hop):
    """fof_block as it was (numpy): the oracle."""
    users = np.asarray(users, dtype=np.int64)
    f_off, f_owner = row_positions(snap.indptr, users)
    friends = snap.indices[f_off].astype(np.int64)
    fdeg = degree[friends]
    ok = (fdeg >= 2) & (fdeg <= max_friend_degree)
    owner, mids = f_owner[ok], friends[ok]
    order = np.lexsort((mids, degree[mids], owner))
    owner, mids = owner[order], mids[order]
    mdeg = degree[mids].astype(np.int64)
    cum = np.cumsum(mdeg)
    starts = group_starts(owner)
    before = np.repeat(cum[starts] - mdeg[starts], np.diff(np.append(starts, owner.size)))
    within = (cum - before <= max_two_hop) | (rank_in_group(owner) == 0)
    owner, mids = owner[within], mids[within]
    order = np.lexsort((mids, owner))
    owner, mids = owner[order], mids[order]
    p_off, p_row = row_positions(snap.indptr, mids)
    cand, via, p_owner = snap.indices[p_off].astype(np.int64), mids[p_row], owner[p_row]
    keep = (cand != users[p_owner]) & ~is_neighbour(snap.indptr, snap.indices, users, p_owner, cand)
    return score_paths(p_owner[keep], cand[keep], via[keep], degree[via[keep]], snap.id_rank, snap.num_users)


@pytest.mark.parametrize("seed,max_friend_degree,max_two_hop", [(0, 5000, 200_000), (1, 12, 200_000), (2, 40, 60)])
def test_paths_and_scores_are_identical_to_the_numpy_expansion(seed, max_friend_degree, max_two_hop):
    g = nx.powerlaw_cluster_graph(500, 4, 0.3, seed=seed)   # hubs, so the caps bite
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    rng = np.random.default_rng(seed)
    users = np.concatenate([rng.integers(0, snap.num_users, 25), [int(np.argmax(snap.degree))] * 2])
    got = fof_block(snap, users, snap.degree, max_friend_degree, max_two_hop)
    want = reference_fof_block(snap, users, snap.degree, max_friend_degree, max_two_hop)
    for name in ("owner", "candidates", "mutual", "adamic_adar", "resource_allocation", "paths_owner", "paths_cand",
                 "paths_via"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.mutual.max() > 1
    assert not thread_scratch(snap.num_users, 1)[1].any()   # the per-thread marks are left zeroed
