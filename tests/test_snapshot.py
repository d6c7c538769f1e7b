"""Snapshots: CSR correctness, round trip on disk, export from a store, versioning and rollback."""

from __future__ import annotations

import json
import time

import networkx as nx
import numpy as np
import pytest

from graph.eventlog import EventLog
from graph.records import Event, Friendship, UserRecord
from graph.snapshot import build_csr, from_edge_list, from_pairs, from_store, load_snapshot, save_snapshot
from graph.snapshot.build import id_array
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError, UnknownUserError


def test_build_csr_symmetric_dedup_earliest_time():
    indptr, indices, since = build_csr(4, np.array([0, 1, 2, 0, 3]), np.array([1, 0, 2, 3, 0]),
                                       np.array([5.0, 3.0, 1.0, np.nan, 7.0]))
    assert indptr.tolist() == [0, 2, 3, 3, 4]
    assert indices.tolist() == [1, 3, 0, 0]
    assert indices.dtype == np.int32
    assert since.tolist() == [3.0, 7.0, 3.0, 7.0]  # 0-1 seen at 5 and 3; 0-3 at NaN and 7


def test_time_zero_among_dates_is_an_unknown_time_in_every_snapshot():
    """Links stamped 0 among epoch dates (older than a crawl's clock) are ties of unknown time, whichever
    way the snapshot is built: else the graph's first tie, and its age, would be 1970. A clock from 0 stays."""
    from graph.snapshot import from_pairs

    snap = from_pairs(["a", "b", "c"], ["b", "c", "d"], [0.0, 1_300_000_000.0, 1_300_000_500.0])
    since = {tuple(sorted((snap.external_id(int(u)), snap.external_id(int(v))))): t
             for u, v, t in zip(*snap.ties(), strict=True)}
    assert np.isnan(since[("a", "b")]) and since[("b", "c")] == 1_300_000_000.0
    _, _, t = build_csr(4, np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.0, 5.0, 90.0]))
    assert sorted(t.tolist()) == [0.0, 0.0, 5.0, 5.0, 90.0, 90.0]


def test_a_constant_time_column_is_no_time_and_a_placeholder_among_dates_is_unknown(caplog):
    """SNAP's ego-Facebook lists `u v 1`: its weight, read as a time, put every tie at one second of 1970,
    and the served snapshot then had every tie "new" (the trending source proposed the most befriended
    users as having made 229 new connections lately). One time for every tie says nothing of time."""
    def times(ts: list[float]) -> list[float]:   # a path graph, one tie per time, each time once
        return build_csr(6, np.arange(len(ts)), np.arange(len(ts)) + 1, np.array(ts))[2][::2].tolist()

    with caplog.at_level("WARNING"):
        assert np.isnan(times([1.0, 1.0, 1.0, np.nan])).all()
    assert "all 3 timed ties at one time, 1: read as ties of unknown time" in caplog.text
    assert np.isnan(times([1.7e9, 1.7e9, 1.7e9])).all()   # a date every tie shares: no order either
    # the weight-1 ties loaded first, then ties made since with real times: the 1s stay unknown
    assert np.isnan(times([1.0, 1.0, 1.3e9, 1.3e9 + 500])[:2]).all()
    assert times([1.0, 1.0, 1.3e9, 1.3e9 + 500])[2:] == [1.3e9, 1.3e9 + 500]
    for kept in ([7.0], [0.0, 5.0, 90.0], [0.0, 1e8, 2e8, 4e8, 5e8]):   # one tie; relative clocks, one
        assert times(kept) == kept                                      # running past 1980's epoch


def test_build_csr_matches_networkx_on_random_graph():
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 300, 3000), rng.integers(0, 300, 3000)
    indptr, indices, _ = build_csr(300, src, dst)
    g = nx.Graph()
    g.add_nodes_from(range(300))
    g.add_edges_from((a, b) for a, b in zip(src.tolist(), dst.tolist(), strict=True) if a != b)
    for v in range(300):
        assert indices[indptr[v]:indptr[v + 1]].tolist() == sorted(g.neighbors(v))


def test_id_array_keeps_non_canonical_ids_as_strings():
    assert id_array(["10", "9", "10"]).tolist() == [9, 10]
    assert id_array(["007", "7"]).dtype.kind == "U"
    assert id_array(["b", "a"]).tolist() == ["a", "b"]


def test_from_edge_list_logs_the_first_bad_rows_then_a_count(tmp_path, caplog):
    from graph.readers import MAX_LOGGED_REJECTS

    path = tmp_path / "e.txt"
    path.write_text("1 2 10\n" + "bad\n" * (3 * MAX_LOGGED_REJECTS))
    with caplog.at_level("WARNING"):
        snap = from_edge_list(path)
    assert snap.meta["rejected_rows"] == 3 * MAX_LOGGED_REJECTS and snap.num_edges == 1
    assert len(caplog.records) == MAX_LOGGED_REJECTS + 1 and "e.txt:2:" in caplog.records[0].getMessage()


def test_from_edge_list_and_round_trip(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("src dst time\n1 2 10\n2 3 20\n3 1 30\n2 1 5\nbad\n")
    snap = from_edge_list(path)
    assert (snap.num_users, snap.num_edges) == (3, 3)
    assert snap.meta["rejected_rows"] == 1
    i1, i2 = snap.index_of("1"), snap.index_of(2)
    k = snap.indptr[i1] + np.searchsorted(snap.neighbors(i1), i2)
    assert snap.since[k] == 5.0
    store = ArtifactStore(tmp_path / "snaps")
    out = save_snapshot(snap, store, source="test")
    back = load_snapshot(out)
    assert np.array_equal(back.indices, snap.indices) and np.array_equal(back.ids, snap.ids)
    assert back.external_id(back.index_of("3")) == "3"
    with pytest.raises(UnknownUserError, match="'99'"):
        back.index_of("99")
    # as served: mapped read-only, shared by worker processes, as plain ndarrays (no np.memmap hooks)
    mapped = load_snapshot(out, mmap=True)
    assert type(mapped.indices) is np.ndarray and not mapped.indices.flags.writeable
    assert np.array_equal(mapped.indices, snap.indices) and np.array_equal(mapped.since, snap.since)


def test_export_from_store_carries_profiles_requests_blocks_events(tmp_path):
    from graph.memory_store import MemoryGraphStore

    store = MemoryGraphStore()
    store.upsert_users([UserRecord(id="a", city="Oslo", lat=1.0, lon=2.0, opted_out=True),
                        UserRecord(id="b", city="Rome"), UserRecord(id="c"), UserRecord(id="d")])
    store.add_friendships([Friendship("a", "b", 3.0), Friendship("b", "c")])
    events = [Event("send", "c", "a", 10.0), Event("impression", "d", "a", 9.0, position=2),
              Event("block", "d", "b", 11.0)]
    store.apply_events(events)
    log = EventLog(tmp_path / "events")
    log.write_segment("x", events)
    log.write_segment("y", events[:1])  # the same event twice in the log is kept once
    started = time.time()
    snap = from_store(store, log)
    assert started <= snap.meta["accounts_read_at"] <= time.time()   # when the accounts were read (serving's rules)
    idx = {u: snap.index_of(u) for u in "abcd"}
    assert snap.num_edges == 2 and snap.opted_out[idx["a"]] and not snap.opted_out[idx["b"]]
    assert snap.vocab["city"] == ["Oslo", "Rome"] and snap.categorical["city"][idx["c"]] == -1
    assert snap.numeric["lat"][idx["a"]] == 1.0 and np.isnan(snap.numeric["lat"][idx["b"]])
    assert snap.requests["src"].tolist() == [idx["c"]] and snap.requests["status"].tolist() == [0]
    assert snap.blocks["dst"].tolist() == [idx["b"]]
    assert snap.events["ts"].tolist() == [9.0, 10.0, 11.0] and snap.events["position"].tolist() == [2, -1, -1]
    back = load_snapshot(save_snapshot(snap, ArtifactStore(tmp_path / "s"), source="memory"))
    assert back.vocab == snap.vocab and np.array_equal(back.events["dst"], snap.events["dst"])
    assert back.meta["accounts_read_at"] == snap.meta["accounts_read_at"]
    plain = save_snapshot(from_pairs(["a"], ["b"]), ArtifactStore(tmp_path / "s"), source="edges")
    published = json.loads((plain / "manifest.json").read_text())["published_at"]
    assert load_snapshot(plain).meta["accounts_read_at"] == published   # not read from a store: when published


def test_export_leaves_out_a_former_accounts_events_under_an_id_taken_again(tmp_path):
    from graph.memory_store import MemoryGraphStore

    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("b", "c")])
    log = EventLog(tmp_path / "events")
    log.write_segment("x", [Event("impression", "a", "c", 1.0, position=0), Event("send", "c", "b", 2.0),
                            Event("impression", "b", "a", 3.0, position=1)])
    store.delete_users(["c"])
    store.upsert_users([UserRecord(id="c")])   # a new account under the id: the log not yet erased
    log.write_segment("y", [Event("send", "c", "a", time.time() + 1.0)])
    asked, read = [], store.deletions
    store.deletions = lambda ids=None, since=None: asked.append((ids, since)) or read(ids, since)
    snap = from_store(store, log)
    named = [(snap.external_id(int(s)), snap.external_id(int(d))) for s, d in zip(snap.events["src"],
                                                                                 snap.events["dst"], strict=True)]
    assert named == [("b", "a"), ("c", "a")]   # the former c's impression and send are not the new c's history
    # only the accounts deleted since the oldest event it holds: one deleted before names none of them
    assert asked == [(None, 1.0)]


@pytest.mark.integration
def test_export_from_neo4j_equals_memory_export(neo4j_store, prefix, tmp_path):
    from graph.memory_store import MemoryGraphStore

    edges = [Friendship(f"{prefix}{a}", f"{prefix}{b}", float(a + b)) for a, b in [(0, 1), (1, 2), (2, 0), (3, 4)]]
    mem = MemoryGraphStore()
    for s in (mem, neo4j_store):
        s.add_friendships(edges)
    real = from_store(neo4j_store)
    keep = np.array([str(x).startswith(prefix) for x in real.ids])
    fake = from_store(mem)
    sub = {str(x): i for i, x in enumerate(real.ids)}
    for u in fake.ids:
        got = sorted(str(real.ids[j]) for j in real.neighbors(sub[str(u)]))
        want = sorted(str(fake.ids[j]) for j in fake.neighbors(fake.index_of(u)))
        assert got == want
    assert keep.sum() == fake.num_users
    neo4j_store.delete_users([str(x) for x in fake.ids])


def test_artifact_store_publish_prune_and_point_back(tmp_path):
    store = ArtifactStore(tmp_path, keep=3)
    with pytest.raises(ArtifactError, match="no published version"):
        store.current()
    paths = []
    for i in range(4):
        staging = store.staging_dir()
        (staging / "x.txt").write_text(str(i))
        paths.append(store.publish(staging, {"i": i}))
    assert store.manifest(store.current())["i"] == 3
    assert len(store.versions()) == 3  # oldest pruned
    store.set_current(paths[2].name)   # what `pymk rollback` does (tests/test_rollback.py)
    assert (store.current() / "x.txt").read_text() == "2"



def test_a_pinned_view_publishes_without_serving_and_releases_later(tmp_path):
    """A refresh run's chain: its versions are read through the pin, CURRENT moves only at release, and
    pruning keeps the served version however many the run publishes after it."""
    store = ArtifactStore(tmp_path, keep=2)
    served = store.publish(store.staging_dir(), {"i": 0}).name
    pinned = store.pinned(store.current_version())
    made = [pinned.publish(pinned.staging_dir(), {"i": i}).name for i in (1, 2, 3)]
    assert pinned.current_version() == made[-1] and store.current_version() == served
    assert pinned.manifest(pinned.current())["i"] == 3
    assert store.versions() == [served, *made[1:]]   # the two newest, and the served one
    assert pinned.release() and store.current_version() == made[-1]
    assert not pinned.release()   # already served: nothing moves


def test_run_bounds_matches_searchsorted_and_keeps_the_array_dtype():
    from graph.snapshot.csr import run_bounds

    rng = np.random.default_rng(0)
    values = np.sort(rng.integers(0, 50, 500)).astype(np.int32)
    probe = np.arange(-2, 53, dtype=np.int64)
    lo, hi = run_bounds(values, probe)
    assert (lo == np.searchsorted(values, probe, "left")).all()
    assert (hi == np.searchsorted(values, probe, "right")).all()
    assert ((hi - lo) == np.array([(values == p).sum() for p in probe])).all()
    one_lo, one_hi = run_bounds(values, 7)   # a single Python int, as the pipeline asks
    assert (int(one_lo), int(one_hi)) == (int(lo[9]), int(hi[9]))


def test_impressions_by_viewer_are_saved_shared_by_mapped_loads_and_recomputed_for_a_past_cut(tmp_path):
    from graph.memory_store import MemoryGraphStore
    from graph.snapshot.build import as_of
    from graph.snapshot.format import SHOWN_ARRAYS
    from ranker.features import FeatureContext

    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b", 1.0), Friendship("b", "c", 1.0)])
    evs = [Event("impression", "b", "a", 30.0, position=0), Event("impression", "a", "c", 20.0, position=0),
           Event("send", "a", "c", 25.0), Event("impression", "a", "b", 10.0, position=1),
           Event("impression", "a", "c", 40.5, position=0)]
    log = EventLog(tmp_path / "events")
    log.write_segment("s", evs)
    built = from_store(store, log)
    i = built.index_of
    viewer, shown, sec = built.impressions_by_viewer()   # by viewer, then time
    assert viewer.tolist() == [i("a")] * 3 + [i("b")]
    assert shown.tolist() == [i("b"), i("c"), i("c"), i("a")] and sec.tolist() == [10.0, 20.0, 40.0, 30.0]

    path = save_snapshot(built, ArtifactStore(tmp_path / "snaps"), source="test")
    assert all((path / f"{name}.npy").exists() for name in SHOWN_ARRAYS)
    mapped = load_snapshot(path, mmap=True)
    ctx = FeatureContext(mapped)
    for got, want in zip((ctx.imp_viewer, ctx.imp_shown, ctx.imp_sec), (viewer, shown, sec), strict=True):
        assert np.array_equal(got, want) and not got.flags.writeable   # the mapping itself: one copy for all

    past = as_of(mapped, 25.0)   # No leakage: the cut's own impressions only
    assert past.impressions_by_viewer()[2].tolist() == [10.0, 20.0]
    assert FeatureContext(past).imp_sec.tolist() == [10.0, 20.0]
    assert mapped.impressions_by_viewer()[2].tolist() == [10.0, 20.0, 40.0, 30.0]   # the full one untouched

    for name in SHOWN_ARRAYS:   # a snapshot saved before they were: computed on first use, the same
        (path / f"{name}.npy").unlink()
    import json

    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"] = {k: v for k, v in manifest["arrays"].items() if k not in SHOWN_ARRAYS}
    (path / "manifest.json").write_text(json.dumps(manifest))
    older = load_snapshot(path, mmap=True)
    assert all(np.array_equal(a, b) for a, b in zip(older.impressions_by_viewer(), (viewer, shown, sec), strict=True))


def test_an_export_leaves_out_an_id_no_snapshot_can_hold_and_goes_on(tmp_path, caplog):
    from graph.memory_store import MemoryGraphStore

    store = MemoryGraphStore()   # written before ids were checked: 'abc\x00' would become 'abc' in the id array
    store.add_friendships([Friendship("abc\x00", "zz"), Friendship("abc", "zz")])
    store.apply_events([Event("block", "abc\x00", "abc", 1.0)])
    snap = from_store(store)
    assert snap.ids.tolist() == ["abc", "zz"] and snap.num_edges == 1 and snap.blocks["src"].size == 0
    assert "1 users left out of the snapshot" in caplog.text and "'\\x00'" in caplog.text
