"""How often each user was shown to a viewer (candidates/seen.py) and the penalty it weighs (candidates/fresh.py)."""

from __future__ import annotations

from candidates.filters import SnapshotStateReader
from candidates.fresh import seen_penalized
from candidates.pipeline import CandidatePipeline, PipelineConfig
from candidates.types import Candidate
from graph.eventlog import EventLog
from graph.memory_store import MemoryGraphStore
from graph.records import Event, Friendship
from graph.snapshot import from_store


def test_times_seen_counts_impressions_per_shown_user(tmp_path):
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


def test_seen_penalized_weighs_the_fused_score_or_the_position():
    fused = [Candidate.of(u, i, "fof", 1.0).with_score("rrf", r) for i, (u, r) in
             enumerate([("x", 0.05), ("y", 0.04), ("z", 0.01)])]
    assert [c.user_id for c in seen_penalized(fused, {"x": 1}, 0.7)] == ["y", "x", "z"]   # 0.035 < 0.04
    assert [c.user_id for c in seen_penalized(fused, {"x": 3}, 0.7)] == ["y", "x", "z"]   # 0.017 > 0.01
    assert [c.user_id for c in seen_penalized(fused, {"x": 5}, 0.7)] == ["y", "z", "x"]   # 0.008 < 0.01
    plain = [Candidate.of(u, i, "fof", 1.0) for i, u in enumerate("abc")]   # no fused score: 1 / (60 + rank)
    assert [c.user_id for c in seen_penalized(plain, {"a": 1}, 0.7)] == ["b", "c", "a"]
    assert [c.user_id for c in seen_penalized(plain, {}, 0.7)] == ["a", "b", "c"]
