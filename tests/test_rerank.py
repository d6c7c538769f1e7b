"""The re-rank after the ranker: the seen penalty, diversity, the popularity cap and exploration slots,
equal scores kept in the ranker's order, and a note of the step that held each candidate back."""

from __future__ import annotations

import numpy as np

from candidates.types import Candidate


def _ranked(snap, ids, sources=None):
    out = []
    for rank, u in enumerate(ids):
        c = Candidate.of(u, snap.index_of(u), (sources or {}).get(u, "fof"), 0.0)
        out.append(c.with_score("score", 1.0 - rank * 0.01))
    return out


def _hub_and_ten():
    """Hub h with 30 friends and ordinary u0..u9, all in one city; the ids h, u0..u9 in that order."""
    from graph.snapshot import from_pairs

    pairs = [("h", f"f{i}") for i in range(30)] + [(f"u{i}", f"v{i}") for i in range(10)]
    snap = from_pairs([a for a, _ in pairs], [b for _, b in pairs])
    snap.vocab["city"] = ["x", "y"]
    snap.categorical["city"] = np.zeros(snap.num_users, dtype=np.int32)
    return snap, ["h", *[f"u{i}" for i in range(10)]]


def test_rerank_seen_penalty_diversity_popular_cap_and_exploration():
    from ranker.rerank import RerankConfig, Reranker

    snap, ids = _hub_and_ten()
    rr = Reranker(snap, RerankConfig(max_popular=0, max_group_share=1.0, explore_share=0.0), seed=0)
    out = rr(_ranked(snap, ids), k=5)
    assert "h" not in [c.user_id for c in out]                       # popular cap
    seen = {snap.index_of("u0"): 5}
    out = Reranker(snap, RerankConfig(max_popular=5, explore_share=0.0, max_group_share=1.0))(
        _ranked(snap, ids), k=3, seen=seen)
    assert [c.user_id for c in out] == ["h", "u1", "u2"]             # u0 shown 5 times: pushed down
    mixed = _ranked(snap, ids, sources={f"u{i}": "ppr" for i in range(5, 10)})
    out = Reranker(snap, RerankConfig(max_popular=5, max_source_share=0.6, max_group_share=1.0, explore_share=0))(
        mixed, k=5)
    assert sum(c.sources[0] == "fof" for c in out) == 3               # at most 60% from one source
    out = Reranker(snap, RerankConfig(max_popular=5, max_group_share=1.0, explore_share=1.0), seed=1)(
        _ranked(snap, ids), k=5)
    # the first three slots are the ranker's; exploration takes the others and is marked
    assert [c.user_id for c in out[:3]] == ["h", "u0", "u1"] and not any(c.score("explore") for c in out[:3])
    assert all(c.score("explore") == 1.0 for c in out[3:]) and {c.user_id for c in out[3:]} <= {
        f"u{i}" for i in range(2, 10)}
    one = Reranker(snap, RerankConfig(max_popular=5, max_group_share=1.0, explore_share=0.5, explore_from=0),
                   seed=3)(_ranked(snap, ids), k=6)
    kept = [c.user_id for c in one if not c.score("explore")]
    assert kept == ["h", *[f"u{i}" for i in range(len(kept) - 1)]]   # displaced ones move down, in order
    assert 0 < len(kept) < 6


def test_rerank_keeps_the_rankers_order_among_equal_scores():
    """A coarse model ties many candidates; the re-rank re-sorts by score after the seen penalty, and equal
    keys keep the order they came in (the ranker's: merge order), not the candidates' index."""
    from ranker.rerank import RerankConfig, Reranker

    snap, ids = _hub_and_ten()
    tied = [c.with_score("score", 0.5) for c in reversed(_ranked(snap, ids))]   # u9 ... u0, h: highest index first
    out = Reranker(snap, RerankConfig(max_popular=11, max_group_share=1.0, explore_share=0.0))(tied, k=11)
    assert [c.user_id for c in out] == [c.user_id for c in tied]
    seen = {snap.index_of("u9"): 1}   # shown once: below the rest, whose order stays
    out = Reranker(snap, RerankConfig(max_popular=11, max_group_share=1.0, explore_share=0.0))(tied, k=11, seen=seen)
    assert [c.user_id for c in out] == [c.user_id for c in tied[1:]] + ["u9"]


def test_rerank_notes_say_which_step_held_each_candidate_back():
    """`pymk why` reads these: each cap that deferred a candidate, and the candidates exploration pushed off."""
    from ranker.rerank import RerankConfig, Reranker

    snap, ids = _hub_and_ten()
    index = snap.index_of

    def notes(cfg, k, ranked=None, seed=0):
        out: dict[int, str] = {}
        got = Reranker(snap, cfg, seed=seed)(ranked or _ranked(snap, ids), k, notes=out)
        return [c.user_id for c in got], {snap.external_id(i): why for i, why in out.items()}

    shown, held = notes(RerankConfig(max_popular=0, max_source_share=1.0, max_group_share=1.0, explore_share=0.0), 5)
    assert held == {"h": "popular"} and "h" not in shown
    shown, held = notes(RerankConfig(max_popular=5, max_source_share=1.0, max_group_share=0.4, explore_share=0.0),
                        5)   # 2 a city
    assert shown == ["h", "u0", "u1", "u2", "u3"]    # the caps fill what they leave empty, in order
    assert held == {u: "city_share" for u in ["u1", *[f"u{i}" for i in range(2, 10)]]}
    mixed = _ranked(snap, ids, sources={f"u{i}": "ppr" for i in range(5, 10)})
    shown, held = notes(RerankConfig(max_popular=5, max_source_share=0.6, max_group_share=1.0, explore_share=0), 5,
                        mixed)
    assert held == {"u2": "source_share", "u3": "source_share", "u4": "source_share"} and "u2" not in shown
    shown, held = notes(RerankConfig(max_popular=5, max_source_share=1.0, max_group_share=1.0, explore_share=1.0), 5,
                        seed=1)
    assert held == {"u2": "explore", "u3": "explore"}   # two explored slots: the ranker's 4th and 5th fell off
    assert [index(u) for u in shown[:3]] == [index("h"), index("u0"), index("u1")]
    assert notes(RerankConfig(max_popular=5, max_source_share=1.0, max_group_share=1.0, explore_share=0.0), 5)[1] == {}
