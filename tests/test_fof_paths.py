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
    return score_paths(p_owner[keep], cand[keep], via[keep], degree[via[keep]], snap.id_hash, snap.id_hash[users],
                       snap.num_users)


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


def reference_score_paths(owner, cand, via_degree, n):
    """score_paths' sums as numpy writes them (np.unique + np.bincount): the oracle of its compiled pass."""
    uniq, inv = np.unique(owner.astype(np.int64) * n + cand, return_inverse=True)
    vdeg = via_degree.astype(np.float64)
    return (uniq // n, uniq % n, np.bincount(inv, minlength=uniq.size),
            np.bincount(inv, weights=1.0 / np.log(vdeg), minlength=uniq.size),
            np.bincount(inv, weights=1.0 / vdeg, minlength=uniq.size))


@pytest.mark.parametrize("grouped", [True, False])
def test_scores_are_the_bits_of_the_numpy_sums(grouped):
    """Per pair: path count, Adamic-Adar and resource allocation equal numpy's sums bit for bit, paths
    grouped by owner (the compiled pass) or not (numpy's), and the scratch is left zeroed."""
    g = nx.powerlaw_cluster_graph(400, 5, 0.4, seed=3)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    users = np.random.default_rng(3).integers(0, snap.num_users, 40)
    paths = fof_block(snap, users, snap.degree)
    owner, cand, via = paths.paths_owner, paths.paths_cand, paths.paths_via
    if not grouped:
        shuffle = np.random.default_rng(4).permutation(owner.size)
        owner, cand, via = owner[shuffle], cand[shuffle], via[shuffle]
    got = score_paths(owner, cand, via, snap.degree[via], snap.id_hash, snap.id_hash[users], snap.num_users)
    u_owner, u_cand, mutual, aa, ra = reference_score_paths(owner, cand, snap.degree[via], snap.num_users)
    at = {(o, c): i for i, (o, c) in enumerate(zip(u_owner.tolist(), u_cand.tolist(), strict=True))}
    rows = np.array([at[(o, c)] for o, c in zip(got.owner.tolist(), got.candidates.tolist(), strict=True)])
    assert rows.size == u_owner.size and np.unique(rows).size == rows.size
    np.testing.assert_array_equal(got.mutual, mutual[rows])
    assert got.adamic_adar.tobytes() == aa[rows].tobytes() and got.resource_allocation.tobytes() == ra[rows].tobytes()
    assert mutual.max() > 2
    assert not thread_scratch(snap.num_users, 3)[0].any()


@pytest.mark.parametrize("k", [0, 1, 5, 30])
def test_ranking_only_the_first_k_keeps_every_viewers_first_k(k):
    """fof_block with k gives each viewer the first k rows of the full ranking, scores included."""
    g = nx.powerlaw_cluster_graph(500, 6, 0.5, seed=5)   # many ties at the k-th mutual count
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    users = np.random.default_rng(5).integers(0, snap.num_users, 30)
    full = fof_block(snap, users, snap.degree)
    top = fof_block(snap, users, snap.degree, k=k)
    want, got = rank_in_group(full.owner) < k, rank_in_group(top.owner) < k
    assert top.owner.size < full.owner.size and (k > 0 or top.owner.size == 0)
    for name in ("owner", "candidates", "mutual", "adamic_adar", "resource_allocation"):
        np.testing.assert_array_equal(getattr(top, name)[got], getattr(full, name)[want], err_msg=name)


@pytest.mark.parametrize("grouped", [True, False])
def test_mutual_ids_are_the_first_common_friends_used_as_intermediaries(grouped):
    """mutual_ids_of: per asked pair (in any order, repeats and pairs without a path included) the
    smallest `limit` of the intermediaries the scored paths went through, as sets of friends give them."""
    from dataclasses import replace

    g = nx.powerlaw_cluster_graph(300, 5, 0.4, seed=6)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    users = np.random.default_rng(6).integers(0, snap.num_users, 20)
    s = fof_block(snap, users, snap.degree, max_friend_degree=30)   # the cap leaves some common friends out
    if not grouped:
        shuffle = np.random.default_rng(7).permutation(s.paths_owner.size)
        s = replace(s, paths_owner=s.paths_owner[shuffle], paths_cand=s.paths_cand[shuffle],
                    paths_via=s.paths_via[shuffle])
    rows = np.random.default_rng(8).integers(0, s.owner.size, 200)
    owner = np.append(s.owner[rows], [0, 0])
    cand = np.append(s.candidates[rows], [users[0], int(snap.indices[snap.indptr[users[0]]])])   # no path
    got = s.mutual_ids_of(owner, cand, 3)
    nbr = [set(snap.indices[snap.indptr[v]:snap.indptr[v + 1]].tolist()) for v in range(snap.num_users)]
    for o, c, ids in zip(owner[:-2].tolist(), cand[:-2].tolist(), got[:-2], strict=True):
        common = sorted(m for m in nbr[int(users[o])] & nbr[c] if 2 <= snap.degree[m] <= 30)
        assert ids == common[:3]
    assert max(len(x) for x in got) == 3 and got[-1] == [] and got[-2] == []
    assert not thread_scratch(snap.num_users, 1)[0].any()
