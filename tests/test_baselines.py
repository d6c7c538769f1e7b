"""The evaluation's ranking metrics by hand and its baselines: neighbourhood scores against networkx,
top K with equal scores included and not ordered by index."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from evaluation.baselines import neighbourhood_baselines
from graph.snapshot import from_pairs
from pymk.metrics import group_ranking_metrics
from tests.timed_graphs import random_timed_graph


def test_group_ranking_metrics_by_hand():
    # group 0: hits at ranks 2 and 3 of 3 relevant; group 1: a hit at rank 1 of 1; group 2: nothing relevant
    group = np.array([0, 0, 0, 0, 1, 1, 2])
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.5, 0.4, 0.3])
    m = group_ranking_metrics(group, np.array([3, 1, 0]), y, score, np.arange(7), k=3)
    assert m["recall@3"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    ideal0 = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg@3"] == pytest.approx(((1 / np.log2(3) + 1 / np.log2(4)) / ideal0 + 1) / 2, abs=1e-4)


def test_neighbourhood_baselines_score_like_networkx():
    src, dst, _ = random_timed_graph()
    snap = from_pairs(src, dst)
    g = nx.Graph(zip(src, dst, strict=True))
    base = neighbourhood_baselines(snap)
    for user in ("3", "17", "42"):
        u = snap.index_of(user)
        cands = [(user, v) for v in {w for f in g[user] for w in g[f]} - set(g[user]) - {user}]
        for name, fn in (("adamic_adar", nx.adamic_adar_index), ("jaccard", nx.jaccard_coefficient),
                         ("resource_allocation", nx.resource_allocation_index)):
            expected = sorted((s for _, _, s in fn(g, cands)), reverse=True)[:10]
            ours = {v: s for _, v, s in fn(g, cands)}
            got = [ours[snap.external_id(int(i))] for i in base[name](u, 10)]
            assert np.allclose(got, expected), (name, user)
    # the five share the last viewer's two-hop counts: asked in any order, each answers for the viewer asked
    shared = neighbourhood_baselines(snap)
    for name in base:
        for user in ("3", "17", "42"):
            u = snap.index_of(user)
            assert np.array_equal(shared[name](u, 10), neighbourhood_baselines(snap)[name](u, 10)), (name, user)


def test_a_baselines_top_k_is_the_full_sorts_head_ties_included():
    """Only candidates at or above the k-th best score are sorted: the same head as sorting all of them,
    ties (many, with integer scores) in the order of the scrambled (viewer, candidate) key."""
    from evaluation.baselines import _top
    from graph.snapshot.csr import scrambled

    rng = np.random.default_rng(0)
    for n, k in ((10, 3), (1_000, 100), (50_000, 100), (5_000, 20)):
        cands = rng.permutation(3 * n)[:n]
        ties = scrambled(7 * 3 * n + cands)   # viewer 7 of 3n users
        for score in (rng.random(n), rng.integers(0, 5, n).astype(np.float64)):
            assert np.array_equal(_top(7, cands, score, k, 3 * n), cands[np.lexsort((ties, -score))[:k]]), (n, k)


def test_equal_scores_are_not_ordered_by_index():
    """Where ids follow sign-up order, a tie broken by index hands every tie to the oldest accounts: the
    evaluation's baselines order equal scores by a hash instead (as the popular, trending and PageRank
    sources do: tests/test_ppr_push.py), so about half of the pairs of tied users come in index order."""
    from evaluation.baselines import _top, popularity_baselines
    from graph.snapshot.csr import scrambled

    n = 2_000
    keys = scrambled(np.arange(n))
    assert np.unique(keys).size == n and 0.45 < np.mean(np.diff(np.argsort(keys)) > 0) < 0.55
    head = _top(3, np.arange(n), np.ones(n), n, n)   # every candidate tied
    assert 0.45 < np.mean(np.diff(head) > 0) < 0.55
    star = from_pairs(["hub"] * 400, [f"u{i:03d}" for i in range(400)])   # the leaves: all degree 1, all tied
    leaf = star.index_of("u000")
    got = popularity_baselines(star, None)["global_popularity"](leaf, 100)   # the hub: the viewer's friend
    assert got.size == 100 and 0.4 < np.mean(np.diff(got) > 0) < 0.6
