"""Candidate sources on graphs whose right answers are obvious: friends of friends (against networkx and the
Cypher query), personalized PageRank (against a dense solve), cold start; the registry."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from candidates.base import SourceRegistry, UnknownSourceError
from candidates.coldstart import ColdStartSource
from candidates.fof import FriendsOfFriendsSource, fof_scores
from candidates.ppr import PersonalizedPageRankSource, forward_push, global_pagerank, ppr_dense
from candidates.registry import REGISTRY
from graph.records import UserRecord
from graph.snapshot import from_pairs
from tests.pipeline_parts import two_cliques
from tests.splitmix_reference import splitmix


def test_fof_two_cliques_joined_by_a_bridge():
    snap = two_cliques()
    src = FriendsOfFriendsSource(snap)
    got = src.generate(snap.index_of("a1"), 10)
    assert [(c.user_id, c.score("fof"), c.proof["fof"]["mutual_ids"]) for c in got] == [("b0", 1.0, ["a0"])]
    got = src.generate(snap.index_of("a0"), 10)
    assert sorted((c.user_id, c.proof["fof"]["mutual_count"]) for c in got) == [("b1", 1), ("b2", 1), ("b3", 1)]
    assert FriendsOfFriendsSource(snap, max_friend_degree=3).generate(snap.index_of("a1"), 10) == []


def test_fof_scores_match_networkx_heuristics():
    g = nx.barabasi_albert_graph(300, 3, seed=2)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    u = snap.index_of("7")
    s = fof_scores(snap, u, snap.degree)
    ext = [int(snap.external_id(c)) for c in s.candidates]
    pairs = [(7, v) for v in ext]
    aa = {v: x for _, v, x in nx.adamic_adar_index(g, pairs)}
    ra = {v: x for _, v, x in nx.resource_allocation_index(g, pairs)}
    for v, m, a, r in zip(ext, s.mutual, s.adamic_adar, s.resource_allocation, strict=True):
        assert m == len(list(nx.common_neighbors(g, 7, v)))
        assert a == pytest.approx(aa[v]) and r == pytest.approx(ra[v])
    two_hop = {w for f in g[7] for w in g[f]} - set(g[7]) - {7}
    assert set(ext) == two_hop
    assert list(s.mutual) == sorted(s.mutual, reverse=True)


def test_fof_two_hop_budget_prefers_low_degree_friends():
    snap = two_cliques()
    s = fof_scores(snap, snap.index_of("b1"), snap.degree, max_two_hop=3)  # b2, b3 (deg 3) fit; b0 (deg 4) not
    assert s.candidates.size == 0  # b2's and b3's friends are all b1's friends already


@pytest.mark.integration
def test_numpy_fof_equals_cypher_fof(neo4j_store, prefix):
    from graph.records import Friendship

    g = nx.powerlaw_cluster_graph(120, 3, 0.3, seed=4)
    neo4j_store.add_friendships([Friendship(f"{prefix}{a}", f"{prefix}{b}") for a, b in g.edges])
    snap = from_pairs([f"{prefix}{a}" for a, _ in g.edges], [f"{prefix}{b}" for _, b in g.edges])
    src = FriendsOfFriendsSource(snap, max_friend_degree=15)
    for node in (0, 5, 17, 60):
        uid = f"{prefix}{node}"
        mine = [(c.user_id, c.proof["fof"]["mutual_count"], tuple(c.proof["fof"]["mutual_ids"]))
                for c in src.generate(snap.index_of(uid), 10)]
        cypher = [(r.candidate, r.mutual_count, r.mutual_ids)
                  for r in neo4j_store.friends_of_friends(uid, limit=10, max_friend_degree=15)]
        assert mine == cypher


def test_fof_ties_go_in_the_pairs_tie_key_order_not_by_id():
    """Every friend of a viewer's only friend ties (one mutual friend, the same Adamic-Adar): the list takes
    them in the order of the pair's tie key (graph/tiebreak.py), the order the graph store gives its rows,
    different for each viewer; not the lowest ids (where ids follow sign-up order: the oldest accounts)."""
    from graph.store import FofRow
    from graph.tiebreak import fof_order, id_hashes

    hub = [str(i) for i in range(100, 160)]
    snap = from_pairs([*(["h"] * len(hub)), "v", "w"], [*hub, "h", "h"])   # v and w: h's friends, as are 100..159
    src = FriendsOfFriendsSource(snap)
    lists = {}
    for viewer in ("v", "w"):
        got = [c.user_id for c in src.generate(snap.index_of(viewer), 10)]
        rows = [FofRow(c, 1, 1 / np.log(62), ("h",)) for c in [*hub, "v", "w"] if c != viewer]
        assert got == [r.candidate for r in fof_order(viewer, rows, 10)]   # the store's order
        assert got != hub[:10]   # not the lowest ids
        lists[viewer] = got
    assert lists["v"] != [c for c in lists["w"] if c != "v"][:10]   # each viewer its own order
    assert np.array_equal(id_hashes(np.array([7, 1234567890123])), id_hashes(["7", "1234567890123"]))
    assert id_hashes(np.array(["ab", "a" * 50]))[0] == id_hashes(["ab"])[0]   # the array's width is not read


def test_ppr_forward_push_within_error_bound_of_dense_solve():
    g = nx.connected_watts_strogatz_graph(60, 4, 0.2, seed=1)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    n = snap.num_users
    dense_adj = np.zeros((n, n))
    for i in range(n):
        dense_adj[i, snap.neighbors(i)] = 1
    for eps in (1e-3, 1e-5):
        nodes, vals = forward_push(snap.indptr, snap.indices, snap.degree, 3, alpha=0.2, eps=eps)
        est = np.zeros(n)
        est[nodes] = vals
        exact = ppr_dense(dense_adj, 3, alpha=0.2)
        err = exact - est
        assert (err >= -1e-12).all()
        assert (err <= eps * snap.degree + 1e-12).all()
    assert np.abs(err).max() < 1e-4


def test_ppr_on_a_dense_graph_reaches_past_the_friends_and_ranks_like_the_dense_solve():
    """Two dense groups of 100 (70% of pairs within a group, 5% across; mean degree ~75): pushed once at
    eps = 1e-4 the walk stops at the viewer's friends (a node two steps away receives less than eps * its
    degree and never pushes) and the source would propose nobody. The push deepens (eps / 4 at a time)
    until it reaches past the friends: the source then proposes 10 users of the viewer's own group, each
    above every user of the other group by a dense solve, and the error bound holds."""
    from candidates.ppr import PersonalizedPageRankSource, forward_push_block

    g = nx.stochastic_block_model([100, 100], [[0.7, 0.05], [0.05, 0.7]], seed=4)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges])
    n, viewer = snap.num_users, snap.index_of("0")
    group = np.array([int(snap.external_id(i)) < 100 for i in range(n)])
    friends = set(snap.neighbors(viewer).tolist())
    _, once, _ = forward_push_block(snap.indptr, snap.indices, snap.degree, [viewer], 0.15, 1e-4, reach=0)
    assert set(once.tolist()) <= friends | {viewer}   # the failure this guards against
    dense_adj = np.zeros((n, n))
    for i in range(n):
        dense_adj[i, snap.neighbors(i)] = 1
    exact = ppr_dense(dense_adj, viewer, alpha=0.15)
    nodes, vals = forward_push(snap.indptr, snap.indices, snap.degree, viewer, alpha=0.15, eps=1e-4)
    est = np.zeros(n)
    est[nodes] = vals
    assert ((exact - est) >= -1e-12).all() and ((exact - est) <= 1e-4 * snap.degree + 1e-12).all()
    got = [c.index for c in PersonalizedPageRankSource(snap).generate(viewer, 10)]
    assert len(got) == 10 and group[got].all()
    assert exact[got].min() > exact[~group].max()


def test_ppr_push_deepens_only_where_it_stops_short():
    """A sparse graph reaches past the friends at eps: the same estimates as a single push. A viewer whose
    whole component is a few users is not deepened either (no residual mass left unpushed)."""
    from candidates.ppr import forward_push_block

    g = nx.connected_watts_strogatz_graph(60, 4, 0.2, seed=1)
    pairs = [(str(a), str(b)) for a, b in g.edges] + [("x", "y"), ("y", "z")]
    snap = from_pairs([a for a, _ in pairs], [b for _, b in pairs])
    users = np.arange(snap.num_users)
    for a, b in zip(forward_push_block(snap.indptr, snap.indices, snap.degree, users, 0.15, 1e-3),
                    forward_push_block(snap.indptr, snap.indices, snap.degree, users, 0.15, 1e-3, reach=0),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_global_pagerank_matches_networkx():
    g = nx.barabasi_albert_graph(200, 2, seed=3)
    g.add_node(999)  # a dangling node
    snap = from_pairs([str(a) for a, _ in g.edges] + ["999"], [str(b) for _, b in g.edges] + ["999"])
    ours = global_pagerank(snap)
    ref = nx.pagerank(g, alpha=0.85, tol=1e-12)
    for node, value in ref.items():
        assert ours[snap.index_of(str(node))] == pytest.approx(value, rel=1e-5)


def test_ppr_source_excludes_self_and_friends_and_prefers_the_own_clique():
    snap = two_cliques()
    got = PersonalizedPageRankSource(snap, eps=1e-6).generate(snap.index_of("a1"), 10)
    ids = [c.user_id for c in got]
    assert "a1" not in ids and not {"a0", "a2", "a3"} & set(ids)
    assert ids[0] == "b0"  # the bridge end is closest


def test_coldstart_only_for_users_with_few_friends_and_prefers_shared_school():
    snap = from_pairs(["a", "b", "c", "d", "b"], ["b", "c", "d", "e", "d"])  # a-b, b-c, c-d, d-e, b-d
    snap.vocab["school"] = ["mit", "yale"]
    snap.categorical["school"] = np.array([0, 0, 1, 1, 0], dtype=np.int32)
    snap.vocab["city"] = ["oslo"]
    snap.categorical["city"] = np.zeros(5, dtype=np.int32)
    src = ColdStartSource(snap, min_friends=2)
    assert src.generate(snap.index_of("b"), 5) == []  # b has 3 friends
    got = src.generate(snap.index_of("a"), 5)          # a has 1 friend (b)
    ids = [c.user_id for c in got]
    assert "b" not in ids and "a" not in ids
    assert ids[0] == "e" and got[0].proof["coldstart"]["shared"] == ["school", "city"]


def test_coldstart_orders_equally_popular_users_by_a_hash_not_by_index():
    """150 disjoint pairs (every user equally central) at one school: the group's pool and the list are in
    splitmix64 order (computed here in Python integers), not the ids' order (often sign-up order: a new
    account's first suggestions would be the school's oldest accounts)."""
    names = [f"u{i:03d}" for i in range(300)]
    snap = from_pairs(names[0::2], names[1::2])
    snap.vocab["school"] = ["mit"]
    snap.categorical["school"] = np.zeros(300, dtype=np.int32)
    viewer = snap.index_of("u299")
    got = [c.user_id for c in ColdStartSource(snap, min_friends=3, per_group=50).generate(viewer, 20)]
    pool = sorted(range(300), key=splitmix)[:50]
    want = [snap.external_id(i) for i in pool if i not in (viewer, snap.index_of("u298"))][:20]
    assert got == want and max(snap.index_of(u) for u in got) > 50


def test_coldstart_for_a_profile_the_snapshot_does_not_hold():
    """A user who signed up after the snapshot gets what a snapshot user with the same profile and friends
    gets; a value the snapshot never saw, or a missing one, is shared with nobody."""
    snap = from_pairs(["a", "b", "c", "d", "b"], ["b", "c", "d", "e", "d"])  # a-b, b-c, c-d, d-e, b-d
    snap.vocab["school"] = ["mit", "yale"]
    snap.categorical["school"] = np.array([0, 0, 1, 1, 0], dtype=np.int32)
    snap.vocab["city"] = ["oslo"]
    snap.categorical["city"] = np.array([0, 0, 0, 0, -1], dtype=np.int32)   # e's city unknown
    src = ColdStartSource(snap, min_friends=2)
    a = snap.index_of("a")
    as_a = src.generate_for_profile(UserRecord(id="new", school="mit", city="oslo"), snap.neighbors(a), 5)
    assert [(c.user_id, c.score("coldstart"), c.proof["coldstart"]) for c in as_a if c.user_id != "a"] == [
        (c.user_id, c.score("coldstart"), c.proof["coldstart"]) for c in src.generate(a, 5)]
    assert [c.user_id for c in as_a] == ["a", "e", "d", "c"]   # school + city, school, then city by centrality
    assert {c.user_id: c.proof["coldstart"]["shared"] for c in as_a}["e"] == ["school"]
    no_city = src.generate_for_profile(UserRecord(id="new", school="mit"), np.array([], np.int64), 5)
    assert {c.user_id: c.proof["coldstart"]["shared"] for c in no_city} == {
        "a": ["school"], "b": ["school"], "e": ["school"]}
    assert src.generate_for_profile(UserRecord(id="new", school="harvard"), np.array([], np.int64), 5) == []
    assert src.generate_for_profile(UserRecord(id="new", city="oslo"), np.array([0, 1]), 5) == []   # 2 friends


def test_registry_refuses_duplicates_and_unknown_names():
    reg = SourceRegistry()
    reg.register("fof", FriendsOfFriendsSource)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("fof", FriendsOfFriendsSource)
    with pytest.raises(UnknownSourceError, match="'nope'"):
        reg.build("nope", two_cliques())
    assert REGISTRY.names() == ["fof", "ppr", "coldstart", "popular", "trending", "ann"]
    snap = two_cliques()
    assert "ann" not in [s.name for s in REGISTRY.build_all(snap)]  # no embeddings: no ANN source
    emb = np.random.default_rng(0).normal(size=(snap.num_users, 4)).astype(np.float32)
    assert [s.name for s in REGISTRY.build_all(snap, embeddings=emb)][-1] == "ann"
    with pytest.raises(ValueError, match="'ann' needs embeddings"):
        REGISTRY.build("ann", snap)
