"""The refresh's snapshot and erase stages on their own: a snapshot that lost most ties or has none is
not published, edge lists in other time units, the days of events a snapshot holds, the event log's
retention."""

from __future__ import annotations

import pytest

from graph.eventlog import EventLog
from graph.memory_store import MemoryGraphStore
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError
from pymk.refresh import stage_erase, stage_snapshot
from pymk.settings import Settings


def test_a_snapshot_that_lost_most_friendships_is_not_published(tmp_path):
    """An export from an emptied (or the wrong) database would be served at once; it is refused by name,
    and published only when asked to."""
    from graph.records import Friendship

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    store.add_friendships([Friendship(f"u{i}", f"u{i + 1}", 1.0) for i in range(10)])
    first = stage_snapshot(settings, store)
    for a in range(6):   # 4 of 10 left: under half
        store.remove_friendship(f"u{a}", f"u{a + 1}")
    with pytest.raises(ArtifactError, match=f"4 friendships where the current one \\({first}\\) has 10"):
        stage_snapshot(settings, store)
    assert ArtifactStore(settings.snapshot_dir).current_version() == first
    store.add_friendships([Friendship("u0", "u1", 1.0)])   # 5 of 10: half is kept, published
    second = stage_snapshot(settings, store)
    store.remove_friendship("u0", "u1")
    assert stage_snapshot(settings, store, allow_shrink=True) not in (first, second)


def test_an_edge_list_without_one_edge_publishes_nothing(tmp_path):
    from click.testing import CliRunner

    from pymk.cli import main

    bad = tmp_path / "ms.txt"
    bad.write_text("1 2 1700000000000\n")   # milliseconds: outside the accepted window, rejected
    result = CliRunner().invoke(main, ["snapshot", "from-edges", str(bad)], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "no edge could be read (first bad row:" in result.output, result.output
    assert ArtifactStore(tmp_path / "snapshots").current_version() is None


def test_an_edge_list_in_milliseconds_loads_with_the_time_unit_setting(tmp_path):
    from click.testing import CliRunner

    from graph.timestamps import set_time_window, time_window
    from pymk.cli import main

    edges = tmp_path / "ms.txt"
    edges.write_text("1 2 1700000000000\n2 3 1700086400000\n")
    old = time_window()
    try:   # the command sets the process's time window from the settings: restored for the tests after
        result = CliRunner().invoke(main, ["snapshot", "from-edges", str(edges)],
                                    env={"PYMK_DATA_DIR": str(tmp_path), "PYMK_TIME_UNIT": "ms"})
    finally:
        set_time_window(old)
    assert result.exit_code == 0, result.output
    snaps = ArtifactStore(tmp_path / "snapshots")
    from graph.snapshot import load_snapshot

    assert sorted(load_snapshot(snaps.current()).since.tolist()) == [1.7e9, 1.7e9, 1.7e9 + 86_400, 1.7e9 + 86_400]


@pytest.mark.parametrize("flag", [[], ["--allow-shrink"]])
def test_refresh_passes_allow_shrink_to_its_snapshot_stage(tmp_path, monkeypatch, flag):
    from click.testing import CliRunner

    from pymk.cli import main

    seen = []
    monkeypatch.setattr("pymk.refresh.stage_snapshot", lambda settings, progress, allow_shrink, stores: (
        seen.append(allow_shrink) or "v1"))
    result = CliRunner().invoke(main, ["refresh", "--stages", "snapshot", *flag], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert seen == [bool(flag)]


def test_the_snapshot_holds_the_configured_days_of_events_counted_back_from_the_newest(tmp_path):
    from graph.records import Event, Friendship, UserRecord
    from graph.snapshot import load_snapshot

    day = 86_400.0
    store = MemoryGraphStore()
    store.add_friendships([Friendship("u1", "u2", 1.0)])
    store.upsert_users([UserRecord(id=f"u{i}") for i in range(3, 6)])
    store.apply_events([Event("send", "u1", "u3", 0.0), Event("send", "u1", "u4", 0.0),
                        Event("send", "u1", "u5", 190 * day), Event("decline", "u3", "u1", day)])
    for days, want in (("0", [0, 100, 200]), ("150", [100, 200])):
        settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path / days), "PYMK_EVENT_HISTORY_DAYS": days})
        log = EventLog(settings.event_log_dir)
        for d in (0, 100, 200):   # one segment a day of impressions, 100 days apart
            log.write_segment(f"day{d}", [Event("impression", "u1", "u2", d * day + 5, position=0)])
        stage_snapshot(settings, store)
        snap = load_snapshot(ArtifactStore(settings.snapshot_dir).current())
        assert ((snap.events["ts"] - 5) / day).tolist() == want, days
        # the requests: the pending ones always (u4 since day 0, u5), the declined one only within the window
        asked = sorted(snap.external_id(int(d)) for d in snap.requests["dst"])
        assert asked == (["u3", "u4", "u5"] if days == "0" else ["u4", "u5"]), days
    assert Settings.from_env({}).event_history_days == 365.0


def test_the_nightly_erase_stage_deletes_event_segments_past_their_retention_only_when_asked(tmp_path):
    import os
    import time as clock

    from graph.records import Event

    store = MemoryGraphStore()
    for retention, left in (("0", ["recent", "stale"]), ("30", ["recent"])):
        settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path / retention),
                                      "PYMK_EVENT_RETENTION_DAYS": retention})
        log = EventLog(settings.event_log_dir)
        now = clock.time()
        for name, age_days in (("recent", 2), ("stale", 40)):
            log.write_segment(name, [Event("impression", "u1", "u2", now - age_days * 86_400.0, position=0)])
            os.utime(settings.event_log_dir / f"{name}.jsonl", (now - 7200, now - 7200))   # settled
        report = stage_erase(settings, store)
        assert sorted(p.stem for p in log.segments()) == left, retention
        assert report["event_log"].get("segments_expired", 0) == 2 - len(left)


def test_events_erase_says_how_many_segments_retention_deleted(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import pymk.refresh
    from pymk.cli import main

    report = {"records_erased": 0, "lists_cut": 0, "segments": 0, "live_segments_left": 0}
    monkeypatch.setattr(pymk.refresh, "stage_erase", lambda settings, settle_s: {
        "accounts": 0, "event_log": {**report, "segments_expired": 3}, "served_log": dict(report)})
    env = {"PYMK_DATA_DIR": str(tmp_path), "PYMK_EVENT_RETENTION_DAYS": "30"}
    result = CliRunner().invoke(main, ["events", "erase"], env=env)
    assert result.exit_code == 0, result.output
    assert "event log: 3 segments past PYMK_EVENT_RETENTION_DAYS (30 days) deleted" in result.output


def test_refresh_passes_max_auc_drop_to_its_embeddings_stage(tmp_path, monkeypatch):
    """What lets `pymk refresh --resume` finish a run whose embeddings were refused, with its own snapshot."""
    from click.testing import CliRunner

    from pymk.cli import main

    seen = []
    monkeypatch.setattr("pymk.refresh.stage_embeddings", lambda settings, max_auc_drop, progress, stores: (
        seen.append(max_auc_drop) or "v1"))
    for flag, drop in (([], 0.02), (["--max-auc-drop", "1"], 1.0)):
        result = CliRunner().invoke(main, ["refresh", "--stages", "embeddings", *flag],
                                    env={"PYMK_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 0, result.output
        assert seen[-1] == drop


def test_a_graph_too_young_to_learn_from_is_refreshed_without_a_ranker(tmp_path):
    """No new tie at any inner cut: the ranker stage is skipped with a warning, and the run still releases its
    snapshot and lists (ranked by fusion) instead of failing and leaving the new snapshot unserved. Four ties
    leave none to validate embeddings with: that stage is skipped the same way (it failed the run with a
    KeyError)."""
    from graph.records import Friendship
    from pymk.refresh import run_refresh

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    store.add_friendships([Friendship(a, b, 1.7e9) for a, b in (("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"))])
    state = run_refresh(settings, stages=("snapshot", "embeddings", "ranker", "precompute"),
                        runners={"snapshot": lambda stores: stage_snapshot(settings, store, stores=stores)})
    assert "too few ties to train embeddings: the snapshot's 4 split into 4 to train on and 0 to validate" in \
        state["done"]["embeddings"]["skipped"]
    assert "no positive examples to learn from" in state["done"]["ranker"]["skipped"]
    assert list(state["released"]) == ["candidates", "snapshot"] and state["release_problems"] == []
    lists = ArtifactStore(settings.candidates_dir)
    assert lists.manifest(lists.current())["ranker_version"] is None
    from click.testing import CliRunner

    from pymk.cli import main

    result = CliRunner().invoke(main, ["embeddings", "refresh"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "Error: too few ties to train embeddings" in result.output, result.output


def test_an_empty_graph_is_refreshed_and_released(tmp_path):
    """A new deployment's first night, before any tie: the ranker stage failed on an IndexError (quantiles of
    no tie times) and the precompute on a ZeroDivisionError (PageRank over no user); now both learning stages
    are skipped and an empty snapshot and lists are released."""
    from pymk.refresh import run_refresh

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    state = run_refresh(settings, stages=("snapshot", "embeddings", "ranker", "precompute"),
                        runners={"snapshot": lambda stores: stage_snapshot(settings, store, stores=stores)})
    assert "too few ties" in state["done"]["embeddings"]["skipped"]
    assert "holds no tie: nothing to learn from" in state["done"]["ranker"]["skipped"]
    assert list(state["released"]) == ["candidates", "snapshot"]
    lists = ArtifactStore(settings.candidates_dir)
    assert lists.manifest(lists.current())["users"] == 0
