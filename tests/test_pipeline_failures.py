"""A source, ranker or re-rank that lies, fails or is slow: the hard rules still hold, the request is still
answered (in fusion or ranked order), and each skipped part is named."""

from __future__ import annotations

import threading

import pytest

from candidates.base import to_candidates
from candidates.filters import SnapshotStateReader
from candidates.fof import FriendsOfFriendsSource
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.ppr import PersonalizedPageRankSource
from candidates.registry import REGISTRY
from candidates.types import Recommendation
from graph.records import UserState
from tests.pipeline_parts import BrokenSource, EvilSource, FixedState, SleepySource, SlowSource, two_cliques


def test_pipeline_never_returns_blocked_or_opted_out_and_survives_bad_sources():
    snap = two_cliques()
    snap.opted_out[snap.index_of("b2")] = True
    state = UserState("a1", frozenset({"a0", "a2", "a3"}), frozenset(), frozenset({"b1"}), {}, frozenset())
    slow = SlowSource()
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap), EvilSource(snap, ["b1", "b2", "b3"]),
               slow, BrokenSource()]
    pipe = CandidatePipeline(snap, sources, FixedState(state, {"b3"}), PipelineConfig(source_budget_s=0.3))
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

    class Spy(EvilSource):
        def generate(self, user, k):
            where[self.name] = threading.current_thread().name
            return super().generate(user, k)

    inline_spy, pooled_spy = Spy(snap, ["b0"]), Spy(snap, ["b1"])
    inline_spy.name, inline_spy.inline, pooled_spy.name = "inline_spy", True, "pooled_spy"
    broken = BrokenSource()
    broken.inline = True
    slow = SlowSource()
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
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap, eps=1e-6), EvilSource(snap, ["a0", "b3"])]
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
    sources = [FriendsOfFriendsSource(snap), PersonalizedPageRankSource(snap, eps=1e-6), EvilSource(snap, ["a0"])]
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


def test_concurrent_requests_do_not_starve_each_others_sources():
    """4 requests at once, two 100 ms sources each, a 250 ms budget: every source answers in every request.
    (With a pool of one thread per source, shared by all requests, two of the four lost every source.)"""
    from concurrent.futures import ThreadPoolExecutor

    snap = two_cliques()
    pipe = CandidatePipeline(snap, [SleepySource("s1"), SleepySource("s2")], SnapshotStateReader(snap),
                             PipelineConfig(source_budget_s=0.25, concurrency=4))
    barrier = threading.Barrier(4)

    def one(_):
        barrier.wait()
        return pipe.recommend("a1", 5).skipped_sources

    with ThreadPoolExecutor(4) as ex:
        skipped = list(ex.map(one, range(4)))
    pipe.close()
    assert skipped == [{}, {}, {}, {}]
