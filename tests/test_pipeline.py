"""The pipeline's stages in order: filters, the state readers, proofs naming only current mutual friends,
`why`, warm-up, viewers and accounts newer than the snapshot."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from candidates.filters import FilterContext, SnapshotStateReader, apply_rules
from candidates.fof import FriendsOfFriendsSource
from candidates.pipeline import CandidatePipeline
from candidates.ppr import PersonalizedPageRankSource
from candidates.registry import REGISTRY
from candidates.types import Candidate
from graph.records import UserRecord, UserState
from graph.snapshot import from_pairs
from tests.pipeline_parts import BrokenSource, EvilSource, two_cliques


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


def test_why_runs_the_sources_once_so_its_stages_agree():
    """A source whose answer changes between runs (budgets, fresh state) cannot make the verdict
    contradict itself: proposal, rank and the shown list all come from one run of the sources; a
    source skipped in that run is named."""
    from candidates.why import why

    snap = two_cliques()

    class Once(EvilSource):   # proposes its targets on its first run only
        calls = 0

        def generate(self, user, k):
            Once.calls += 1
            return super().generate(user, k) if Once.calls == 1 else []

    once = Once(snap, ["b2"])
    once.name = "once"
    pipe = CandidatePipeline(snap, [FriendsOfFriendsSource(snap), once, BrokenSource()], SnapshotStateReader(snap))
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
