"""Candidate sources, filters and the pipeline, on graphs whose right answers are obvious."""

from __future__ import annotations

import threading
import time
from collections import Counter

import networkx as nx
import numpy as np
import pytest

from candidates.base import SourceRegistry, UnknownSourceError, to_candidates
from candidates.coldstart import ColdStartSource
from candidates.filters import FilterContext, SnapshotStateReader, apply_rules
from candidates.fof import FriendsOfFriendsSource, fof_scores
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.ppr import PersonalizedPageRankSource, forward_push, global_pagerank, ppr_dense
from candidates.registry import REGISTRY
from candidates.types import Candidate, Recommendation
from graph.records import UserRecord, UserState
from graph.snapshot import from_pairs
from tests.splitmix_reference import splitmix


def two_cliques():
    """Cliques a0..a3 and b0..b3 joined by the bridge a0-b0."""
    pairs = [(f"{s}{i}", f"{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)] + [("a0", "b0")]
    return from_pairs([a for a, _ in pairs], [b for _, b in pairs])


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


def test_filters_remove_exactly_what_they_should():
    snap = two_cliques()
    cands = [Candidate.of(u, snap.index_of(u), "x", 1.0) for u in ["a1", "a2", "b1", "b2", "b3", "a3", "b0"]]
    state = UserState("a1", frozenset({"a2"}), frozenset({"b1"}), frozenset({"b2"}),
                      {"b3": time.time() - 10, "a3": time.time() - 400 * 86400}, frozenset({"b0"}))
    ctx = FilterContext("a1", state, opted_out=set())
    counts: Counter = Counter()
    res = apply_rules(cands, ctx, counts)
    assert [c.user_id for c in res.kept] == ["a3"]  # its decline is older than the cool-down
    assert dict(counts) == {"viewer_deactivated": 0, "self": 1, "already_friends": 1, "pending_request": 1,
                            "blocked": 1, "opted_out": 0, "declined": 1, "dismissed": 1}
    assert {c.user_id: why.split(":")[0] for c, why in res.removed} == {
        "a1": "self", "a2": "already_friends", "b1": "pending_request", "b2": "blocked", "b3": "declined",
        "b0": "dismissed"}


class _Evil:
    """A source that insists on suggesting blocked and opted-out users with huge scores."""

    name = "evil"
    description = "test"

    def __init__(self, snap, targets):
        self.snap, self.targets = snap, targets

    def generate(self, user, k):
        return [Candidate.of(t, self.snap.index_of(t), self.name, 1e9) for t in self.targets]


class _Slow:
    """Cannot answer before the test lets it (after the request returned): over budget, deterministically."""

    name = "slow"
    description = "test"

    def __init__(self):
        self.release = threading.Event()

    def generate(self, user, k):
        self.release.wait(timeout=30)
        return []


class _Broken:
    name = "broken"
    description = "test"

    def generate(self, user, k):
        raise RuntimeError("boom")


class _FixedState:
    def __init__(self, state, opted):
        self.state, self.opted = state, opted

    def viewer_state(self, user_id):
        return self.state

    def opted_out(self, ids):
        return set(ids) & self.opted

    def rules(self, user_id, ids, accounts_since=None):
        return self.viewer_state(user_id), self.opted_out(ids)


def test_pipeline_never_returns_blocked_or_opted_out_and_survives_bad_sources():
    snap = two_cliques()
    snap.opted_out[snap.index_of("b2")] = True
    state = UserState("a1", frozenset({"a0", "a2", "a3"}), frozenset(), frozenset({"b1"}), {}, frozenset())
    slow = _Slow()
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap), _Evil(snap, ["b1", "b2", "b3"]),
               slow, _Broken()]
    pipe = CandidatePipeline(snap, sources, _FixedState(state, {"b3"}), PipelineConfig(source_budget_s=0.3))
    rec = pipe.recommend("a1", k=10)
    slow.release.set()
    ids = [c.user_id for c in rec.candidates]
    assert ids == ["b0"]
    assert set(rec.skipped_sources) == {"slow", "broken"}
    assert rec.removed["blocked"] == 1 and rec.removed["opted_out"] == 2  # b2 by snapshot, b3 fresh
    top = rec.candidates[0]
    assert set(top.sources) == {"fof", "ppr"} and top.proof["fof"]["mutual_ids"] == ["a0"]
    pipe.close()


def test_inline_sources_run_in_the_request_thread_and_fail_alone():
    """Sources marked inline run in the caller's thread, pooled ones elsewhere; an inline source that
    raises is skipped with its reason like a pooled one, and a late pooled one is still cut off."""
    snap = two_cliques()
    where: dict[str, str] = {}

    class Spy(_Evil):
        def generate(self, user, k):
            where[self.name] = threading.current_thread().name
            return super().generate(user, k)

    inline_spy, pooled_spy = Spy(snap, ["b0"]), Spy(snap, ["b1"])
    inline_spy.name, inline_spy.inline, pooled_spy.name = "inline_spy", True, "pooled_spy"
    broken = _Broken()
    broken.inline = True
    slow = _Slow()
    assert all(s.inline for s in REGISTRY.build_all(snap))   # every in-memory source runs inline
    pipe = CandidatePipeline(snap, [inline_spy, pooled_spy, broken, slow], SnapshotStateReader(snap),
                             PipelineConfig(source_budget_s=0.3))
    rec = Recommendation("a1", [])
    got = pipe.generate(snap.index_of("a1"), rec)
    slow.release.set()
    assert where == {"inline_spy": threading.current_thread().name, "pooled_spy": where["pooled_spy"]}
    assert where["pooled_spy"].startswith("source")
    assert [[c.user_id for c in g] for g in got] == [["b0"], ["b1"]]
    assert rec.skipped_sources == {"broken": "failed: RuntimeError('boom')", "slow": "over budget (300 ms)"}
    assert rec.skip_outcomes == {"broken": "failed", "slow": "over_budget"}   # the metric's label, not the words
    pipe.close()


def test_a_skipped_part_keeps_its_words_and_a_known_outcome():
    rec = Recommendation("a1", [])
    rec.failed("ppr", RuntimeError("x"))
    rec.skip("ann", "over budget (250 ms)", "over_budget")
    rec.failed("newcomers", OSError("down"), "failed: down")
    assert rec.skipped_sources == {"ppr": "failed: RuntimeError('x')", "ann": "over budget (250 ms)",
                                   "newcomers": "failed: down"}
    assert rec.skip_outcomes == {"ppr": "failed", "ann": "over_budget", "newcomers": "failed"}
    with pytest.raises(ValueError, match="'late'"):
        rec.skip("fof", "late", "late")
    assert "fof" not in rec.skipped_sources


@pytest.mark.parametrize("breaks", ["call", "rank_proposals"])
def test_a_failing_ranker_degrades_the_order_to_fusion_and_never_fails_the_request(breaks):
    """As a broken source degrades its candidates: the request gets the same proposals fused by reciprocal
    rank (the list a pipeline without a ranker gives), says so in `skipped_sources`, and counts each cheap
    filter's removals once. The batch job's `ranked` still raises: a list published under a ranker's
    version is that ranker's order."""
    snap = two_cliques()

    class Broken:
        def __call__(self, viewer, candidates):
            raise ValueError("model file truncated")

    class BrokenOnArrays(Broken):   # as the learned ranker: merge and cheap filters (counted), then the model
        def rank_proposals(self, pipeline, user, proposals, rec):
            merged = pipeline.merge([to_candidates(name, snap, p) for name, p in proposals.items()])
            return self(None, pipeline.cheap_filters(user, merged, rec))

    ranker = Broken() if breaks == "call" else BrokenOnArrays()
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap, eps=1e-6), _Evil(snap, ["a0", "b3"])]
    plain = CandidatePipeline(snap, sources, SnapshotStateReader(snap))   # a0: a1's friend, for the cheap filters
    broken = CandidatePipeline(snap, sources, SnapshotStateReader(snap), ranker=ranker)
    try:
        want, got = plain.recommend("a1", k=5), broken.recommend("a1", k=5)
        assert [c.user_id for c in got.candidates] == [c.user_id for c in want.candidates] != []
        assert got.skipped_sources == {"ranker": "failed: ValueError('model file truncated')"}
        assert got.removed == want.removed and got.removed["already_friends"] == 1
        with pytest.raises(ValueError, match="truncated"):
            broken.ranked(snap.index_of("a1"), Recommendation("a1", []))
        from candidates.why import why

        shown = want.candidates[0].user_id   # `pymk why` ranks as the request does, and says the ranker failed
        verdict = why(broken, "a1", shown, k=5)
        assert verdict.shown_at == 0 and verdict.ranked_at == why(plain, "a1", shown, k=5).ranked_at
        failed = "  ranker failed: ValueError('model file truncated'): ranked by reciprocal rank fusion"
        assert failed in verdict.lines()
    finally:
        plain.close()
        broken.close()


@pytest.mark.parametrize("breaks", ["reranker", "times_seen"])
def test_a_failing_rerank_leaves_the_ranked_order_after_the_hard_rules(breaks):
    """The re-rank orders and spreads a list the hard rules already passed: when it (or the impressions it
    reads) fails, the request gets the ranked order, says so, and `pymk why` too."""
    from candidates.why import why
    from ranker.rerank import RerankConfig, Reranker

    snap = two_cliques()
    cfg = RerankConfig(max_source_share=1.0, max_group_share=1.0, max_popular=100, explore_share=0.0)
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap, eps=1e-6), _Evil(snap, ["a0"])]
    plain = CandidatePipeline(snap, sources, SnapshotStateReader(snap))
    pipe = CandidatePipeline(snap, sources, SnapshotStateReader(snap), reranker=Reranker(snap, cfg))

    def fails(*_a, **_k):
        raise RuntimeError("impressions unreadable")

    if breaks == "reranker":
        pipe.reranker.__class__ = type("Broken", (Reranker,), {"__call__": fails})
    else:
        pipe.times_seen = fails
    try:
        got, want = pipe.recommend("a1", k=4), plain.recommend("a1", k=4)
        assert [c.user_id for c in got.candidates] == [c.user_id for c in want.candidates] != []
        assert got.skipped_sources == {"rerank": "failed: RuntimeError('impressions unreadable')"}
        verdict = why(pipe, "a1", want.candidates[0].user_id, k=4)
        assert verdict.shown_at == 0
        assert "  re-rank failed: RuntimeError('impressions unreadable'): the list keeps its ranked order" in (
            verdict.lines())
    finally:
        plain.close()
        pipe.close()


def test_why_runs_the_sources_once_so_its_stages_agree():
    """A source whose answer changes between runs (budgets, fresh state) cannot make the verdict
    contradict itself: proposal, rank and the shown list all come from one run of the sources; a
    source skipped in that run is named."""
    from candidates.why import why

    snap = two_cliques()

    class Once(_Evil):   # proposes its targets on its first run only
        calls = 0

        def generate(self, user, k):
            Once.calls += 1
            return super().generate(user, k) if Once.calls == 1 else []

    once = Once(snap, ["b2"])
    once.name = "once"
    pipe = CandidatePipeline(snap, [FriendsOfFriendsSource(snap), once, _Broken()], SnapshotStateReader(snap))
    try:
        verdict = why(pipe, "a1", "b2", k=5)
        assert Once.calls == 1
        assert verdict.proposed_by == {"once": 0} and verdict.ranked_at == 1 and verdict.shown_at == 1  # b0 first
        assert verdict.removed is None
        assert verdict.skipped == {"broken": "failed: RuntimeError('boom')"}
        assert "  source broken skipped: failed: RuntimeError('boom')" in verdict.lines()
        assert why(pipe, "a1", "b2", k=5).proposed_by == {}   # its second run: consistently not proposed

        class Precomputed:   # where serving reads a precomputed list, so does the verdict
            version = "v1"

            def get(self, user):
                return [Candidate.of("b3", snap.index_of("b3"), "fof", 1.0)]

        pipe.precomputed = Precomputed()
        verdict = why(pipe, "a1", "b3", k=5)
        assert verdict.ranked_at == 0 and verdict.shown_at == 0 and verdict.proposed_by == {}
    finally:
        pipe.close()


def test_why_names_what_the_rerank_did_to_a_candidate():
    """A candidate ranked first but shown again and again without an action sinks below the list: the
    verdict says the re-rank's seen penalty took it there (it had said "ranked #1" and "ranked below the
    first k that passed the hard rules", with no reason), and names a cap that held one back."""
    from candidates.types import RerankTrace
    from candidates.why import _not_shown, why
    from ranker.rerank import RerankConfig, Reranker

    # v's friends f0..f2; c0 is tied to all three, c1..c4 to one each: c0 first by mutual friends
    pairs = [("v", f"f{i}") for i in range(3)] + [(f"f{i}", "c0") for i in range(3)]
    pairs += [(f"f{i % 3}", f"c{i}") for i in range(1, 5)]
    snap = from_pairs([a for a, _ in pairs], [b for _, b in pairs])
    cfg = RerankConfig(max_source_share=1.0, max_group_share=1.0, max_popular=100, explore_share=0.0)
    pipe = CandidatePipeline(snap, [FriendsOfFriendsSource(snap)], SnapshotStateReader(snap),
                             reranker=Reranker(snap, cfg))
    try:
        fresh = why(pipe, "v", "c0", k=3)
        assert fresh.ranked_at == 0 and fresh.shown_at == 0 and fresh.reranked == [] and fresh.removed is None
        pipe.times_seen = lambda user: {snap.index_of("c0"): 5}
        sunk = why(pipe, "v", "c0", k=3)
        assert sunk.ranked_at == 0 and sunk.shown_at is None
        assert sunk.removed == "re-ranked below the first 3 (the re-rank's lines above)"
        assert sunk.reranked == ["shown to the viewer 5 times without an action: its score x0.168 (the seen "
                                 "penalty, x0.7 a time)"]
        assert "  re-rank: " + sunk.reranked[0] in sunk.lines()
        assert why(pipe, "v", "c0", k=5).shown_at == 4   # still shown, last, with the same note
        assert why(pipe, "v", "c1", k=3).reranked == []   # never shown: nothing to say
        pipe.reranker = Reranker(snap, RerankConfig(max_source_share=0.5, max_group_share=1.0, max_popular=100,
                                                    explore_share=0.0))
        pipe.times_seen = lambda user: {}
        # every candidate from fof: at most 2 of 4 before the caps fill in. c1..c4 share one mutual friend each
        # and tie in the fusion; they keep fof's order (Adamic-Adar: c2 and c3, through friends of 3, first; the
        # two in the order of their pairs' tie keys)
        capped = max((why(pipe, "v", c, k=4) for c in ("c2", "c3")), key=lambda verdict: verdict.ranked_at)
        assert capped.ranked_at == 2 and capped.reranked == ["held back: its first source already filled its share "
                                                             "of the list (max_source_share)"] and capped.shown_at == 2
    finally:
        pipe.close()
    kept = RerankTrace(considered=[1, 2, 3], kept=[1, 2, 3])
    assert _not_shown(kept, 3, 3, True) == ("pushed past the first 3 by the fresh-tie slots (newcomers, friends of "
                                            "new friends)")
    assert _not_shown(kept, 7, 3, True) == "ranked below the first 3 that passed the hard rules"
    assert _not_shown(None, 7, 3, False) == "no source proposed it"


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


def test_snapshot_state_reader_reads_requests_blocks_dismissals(tmp_path):
    from graph.eventlog import EventLog
    from graph.memory_store import MemoryGraphStore
    from graph.records import Event, Friendship
    from graph.snapshot import from_store

    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("c", "d"), Friendship("e", "f")])
    evs = [Event("send", "a", "c", 1.0), Event("send", "d", "a", 2.0), Event("decline", "a", "d", 3.0),
           Event("block", "e", "a", 4.0), Event("dismiss", "a", "f", 5.0)]
    store.apply_events(evs)
    log = EventLog(tmp_path)
    log.write_segment("s", evs)
    st = SnapshotStateReader(from_store(store, log)).viewer_state("a")
    assert st.friends == {"b"} and st.pending == {"c"} and st.blocked == {"e"}
    assert st.declined == {"d": 3.0} and st.dismissed == {"f"}


def test_times_seen_counts_impressions_per_shown_user(tmp_path):
    from graph.eventlog import EventLog
    from graph.memory_store import MemoryGraphStore
    from graph.records import Event, Friendship
    from graph.snapshot import from_store

    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("c", "d")])
    evs = [Event("impression", "a", "c", 1.0, position=0), Event("impression", "a", "c", 2.0, position=0),
           Event("impression", "a", "d", 3.0, position=1), Event("impression", "c", "a", 4.0, position=0),
           Event("dismiss", "a", "d", 5.0)]
    log = EventLog(tmp_path)
    log.write_segment("s", evs)
    snap = from_store(store, log)
    pipe = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    i = snap.index_of
    assert pipe.times_seen(i("a")) == {i("c"): 2, i("d"): 1}
    assert pipe.times_seen(i("b")) == {}
    pipe.close()
    # only the last `seen_window_days` of impressions count (each worker holds them)
    day = 86_400.0
    log.write_segment("later", [Event("impression", "a", "d", 20 * day, position=0)])
    snap = from_store(store, log)
    pipe = CandidatePipeline(snap, [], SnapshotStateReader(snap), PipelineConfig(seen_window_days=14))
    assert pipe.times_seen(snap.index_of("a")) == {snap.index_of("d"): 1}   # days 0 are 20 days older
    pipe.close()


class _Sleepy:
    def __init__(self, name: str) -> None:
        self.name, self.description = name, "test"

    def generate(self, user, k):
        time.sleep(0.1)
        return []


def test_concurrent_requests_do_not_starve_each_others_sources():
    """4 requests at once, two 100 ms sources each, a 250 ms budget: every source answers in every request.
    (With a pool of one thread per source, shared by all requests, two of the four lost every source.)"""
    from concurrent.futures import ThreadPoolExecutor

    snap = two_cliques()
    pipe = CandidatePipeline(snap, [_Sleepy("s1"), _Sleepy("s2")], SnapshotStateReader(snap),
                             PipelineConfig(source_budget_s=0.25, concurrency=4))
    barrier = threading.Barrier(4)

    def one(_):
        barrier.wait()
        return pipe.recommend("a1", 5).skipped_sources

    with ThreadPoolExecutor(4) as ex:
        skipped = list(ex.map(one, range(4)))
    pipe.close()
    assert skipped == [{}, {}, {}, {}]


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


def test_warm_runs_the_ranking_stages_once_for_a_user_with_a_friend():
    snap = from_pairs(["x", "a", "a"], ["x", "b", "c"])   # x: no friends; a-b, a-c
    pipe = CandidatePipeline(snap, [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap)],
                             SnapshotStateReader(snap))
    seen, heads = [], []

    class Head(list):   # the list ranked, recording what warm() reads of it
        def __getitem__(self, i):
            heads.append(i)
            return super().__getitem__(i)

    real = pipe.ranked
    pipe.ranked = lambda user, rec: seen.append(user) or Head(real(user, rec))
    pipe.warm()
    assert [snap.external_id(u) for u in seen] == ["a"] and snap._id_hash is not None
    assert heads == [slice(None, 20)]   # the head's candidates are built: their proofs' kernels run too
    pipe.close()
    lonely = from_pairs(["x"], ["x"])
    CandidatePipeline(lonely, [], SnapshotStateReader(lonely)).warm()   # no user with a friend: nothing to run


def test_a_proof_names_only_mutual_friends_the_viewer_still_has():
    from candidates.filters import current_proof

    fof = {"mutual_count": 5, "adamic_adar": 1.0, "mutual_ids": ["m1", "m2", "m3"]}
    two = Candidate.of("c", 1, "fof", 5, fof).merged(Candidate.of("c", 1, "ppr", 0.1, {"mass": 0.1}))
    one = Candidate.of("d", 2, "fof", 1, {"mutual_count": 1, "mutual_ids": ["m2"]})
    kept = current_proof([two, one], frozenset({"m1", "m3"}))
    assert kept[0].proof["fof"] == {"mutual_count": 4, "adamic_adar": 1.0, "mutual_ids": ["m1", "m3"]}
    assert kept[0].proof["ppr"] == {"mass": 0.1} and kept[0].scores == two.scores
    assert "fof" not in kept[1].proof and kept[1].sources == ("fof",)   # no mutual friend left to name
    assert current_proof([two], frozenset({"m1", "m2", "m3"}))[0] is two   # nothing stale: unchanged
    hidden = current_proof([two], frozenset({"m1", "m2", "m3"}), unnamed=frozenset({"m2"}))[0]
    assert hidden.proof["fof"]["mutual_count"] == 5 and hidden.proof["fof"]["mutual_ids"] == ["m1", "m3"]
    # c ended a tie since the snapshot: only the names whose tie with c stands now, and only they count
    everyone = frozenset({"m1", "m2", "m3"})
    checked = current_proof([two], everyone, ties_ended=frozenset({"c"}), tied={("c", "m1"), ("c", "m3")})[0]
    assert checked.proof["fof"] == {"mutual_count": 2, "adamic_adar": 1.0, "mutual_ids": ["m1", "m3"]}
    assert "fof" not in current_proof([two], everyone, ties_ended=frozenset({"c"}), tied=set())[0].proof
    assert "fof" not in current_proof([two], everyone, ties_ended=frozenset({"c"}))[0].proof   # unchecked
    assert current_proof([one], everyone, ties_ended=frozenset({"c"}), tied=set())[0] is one   # d: not stamped


def test_fresh_fof_names_mutual_friends_in_the_snapshots_order():
    """Integer ids by value, as a snapshot of them orders them (the API's proof names 718 before 2019),
    not as strings ('2019, 4353, 718', as `pymk suggest` printed them); other ids as strings."""
    from candidates.fresh import fresh_fof
    from graph.memory_store import MemoryGraphStore
    from graph.records import Friendship, UserRecord

    for mutual, named in ((["4353", "718", "2019", "-5"], ["-5", "718", "2019", "4353"]),
                          (["4353", "718", "x9", "007"], ["007", "4353", "718", "x9"])):
        store = MemoryGraphStore()
        store.upsert_users([UserRecord(id=u) for u in ["1", "9", *mutual]])
        store.add_friendships([Friendship(a, m) for m in mutual for a in ("1", "9")])
        (c,) = fresh_fof(store, "1", 5).candidates
        assert c.user_id == "9" and c.proof["fof"]["mutual_ids"] == named
        snap = from_pairs([a for m in mutual for a in ("1", "9")], [m for m in mutual for _ in ("1", "9")])
        got = FriendsOfFriendsSource(snap).generate(snap.index_of("1"), 5)
        assert got[0].proof["fof"]["mutual_ids"] == named   # the snapshot path names them alike


def test_a_new_viewers_two_hop_candidate_under_a_reused_id_is_left_out():
    """The fresh path's own friends of friends too (not only the snapshot sources' candidates): the
    snapshot's record of a reused id, and so its features, is the former account's. An account the
    snapshot never held is proposed as before."""
    from candidates.fresh import fresh_fof
    from graph.memory_store import MemoryGraphStore
    from graph.records import Friendship
    from graph.snapshot.export import from_store

    store = MemoryGraphStore()
    store.add_friendships([Friendship("old", "hub"), Friendship("reused", "x")])
    snap = from_store(store)
    store.delete_users(["reused"])
    store.upsert_users([UserRecord(id=u) for u in ("reused", "joiner", "viewer")])
    store.add_friendships([Friendship(u, "hub") for u in ("reused", "joiner", "viewer")])
    assert [c.user_id for c in fresh_fof(store, "viewer", 10).candidates] == ["joiner", "old", "reused"]
    assert [c.user_id for c in fresh_fof(store, "viewer", 10, snap=snap).candidates] == ["joiner", "old"]


def test_a_new_accounts_fused_list_is_the_same_order_whatever_the_limit():
    """The fresh path fuses four lists by reciprocal rank; were each list as long as the limit asks, a
    candidate deep in several lists would rise or fall with the limit (the fusion reads every rank)."""
    from candidates.fresh import fresh_fof
    from graph.memory_store import MemoryGraphStore
    from graph.records import Friendship
    from graph.snapshot.export import from_store

    rng = np.random.default_rng(3)
    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id=f"u{i}", city=f"c{i % 3}", school=f"s{i % 7}") for i in range(400)])
    store.add_friendships([Friendship(f"u{a}", f"u{b}", float(t)) for t, (a, b) in
                           enumerate(rng.integers(0, 400, size=(2400, 2))) if a != b])
    snap = from_store(store)
    sources = REGISTRY.build_all(snap)
    store.upsert_users([UserRecord(id="new", city="c1", school="s2")])
    store.add_friendships([Friendship("new", "u5", 1e4)])
    def fused(limit: int) -> list[Candidate]:
        return fresh_fof(store, "new", limit, snap=snap, sources=sources).candidates

    full = fused(100)   # the API's largest limit
    assert len(full) == 100 and {"coldstart", "popular", "fof"} <= {s for c in full for s in c.sources}
    for limit in (1, 3, 10, 60):
        assert [c.user_id for c in fused(limit)] == [c.user_id for c in full[:limit]]
