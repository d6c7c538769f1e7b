"""The refresh job: every stage publishes, the manifest times them, a failed run resumes where it stopped."""

from __future__ import annotations

import json

import pytest

from graph.eventlog import EventLog
from graph.ingest import ingest_edges, ingest_events, ingest_users
from graph.memory_store import MemoryGraphStore
from pymk.artifacts import ArtifactStore
from pymk.errors import ArtifactError, ConfigError
from pymk.refresh import run_refresh, stage_embeddings, stage_erase, stage_ranker, stage_snapshot
from pymk.settings import Settings
from sim.export import SampleSpec, write_sample
from sim.world import WorldConfig


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("refresh")
    sample = root / "sample"
    write_sample(SampleSpec(WorldConfig(num_users=500, seed=3), log_days=2), sample)
    settings = Settings.from_env({"PYMK_DATA_DIR": str(root / "data")})
    store = MemoryGraphStore()
    ingest_users(store, sample / "users.csv", progress=False)
    ingest_edges(store, sample / "edges.txt", progress=False)
    ingest_events(store, sample / "events.jsonl", EventLog(settings.event_log_dir), progress=False)
    return settings, store


def _runners(settings, store, calls, fail_at=None):
    def wrap(name, fn):
        def run(stores):
            calls.append(name)
            if name == fail_at:
                raise RuntimeError(f"{name} broke")
            return fn(stores)
        return run
    return {"erase": wrap("erase", lambda stores: stage_erase(settings, store, settle_s=0)),
            "snapshot": wrap("snapshot", lambda stores: stage_snapshot(settings, store, stores=stores)),
            "embeddings": wrap("embeddings", lambda stores: stage_embeddings(settings, epochs=3, max_auc_drop=1.0,
                                                                             stores=stores)),
            "ranker": wrap("ranker", lambda stores: stage_ranker(settings, epochs=2, viewers_per_cut=60,
                                                                 stores=stores))}


def test_refresh_publishes_every_stage_and_resumes_after_a_failure(world):
    settings, store = world
    calls: list[str] = []
    served = {name: ArtifactStore(root).current_version() for name, root in settings.artifact_dirs.items()}
    with pytest.raises(RuntimeError, match="ranker broke"):
        run_refresh(settings, runners=_runners(settings, store, calls, fail_at="ranker"))
    manifests = sorted((settings.data_dir / "refresh").glob("*/manifest.json"))
    state = json.loads(manifests[-1].read_text())
    assert list(state["done"]) == ["erase", "snapshot", "embeddings"] and state["running"] == "ranker"
    snapshot_version = state["done"]["snapshot"]["version"]
    # published, not released: the API still serves what it served (a new snapshot alone would be served
    # without the embeddings, ranker and lists made for it)
    assert ArtifactStore(settings.snapshot_dir).versions()[-1] == snapshot_version
    assert {name: ArtifactStore(root).current_version() for name, root in settings.artifact_dirs.items()} == served

    calls.clear()
    done = run_refresh(settings, resume=True, runners=_runners(settings, store, calls))
    assert calls == ["ranker"]  # precompute runs the default stage function (not counted here)
    assert done["run"] == state["run"] and done["finished"] and done["done"]["snapshot"]["version"] == snapshot_version
    assert list(done["done"]) == ["erase", "snapshot", "embeddings", "ranker", "precompute"]
    stage_of = {"snapshot": "snapshot", "embeddings": "embeddings", "ranker": "ranker", "candidates": "precompute"}
    for name, directory in settings.artifact_dirs.items():   # every version released together at the end
        assert ArtifactStore(directory).current_version() == done["done"][stage_of[name]]["version"]
        assert done["done"][stage_of[name]]["seconds"] >= 0
    assert list(done["released"]) == ["candidates", "ranker", "embeddings", "snapshot"]
    lists, rankers = ArtifactStore(settings.candidates_dir), ArtifactStore(settings.ranker_dir)
    made_with = lists.manifest(lists.current())
    assert made_with["snapshot_version"] == snapshot_version  # the lists come from this run's artifacts
    assert made_with["embeddings_version"] == done["done"]["embeddings"]["version"] == \
        rankers.manifest(rankers.current())["embeddings_version"]   # so does the ranker, unreleased as it was

    # a finished run is not resumed: a new one starts; an unknown stage is refused by name
    calls.clear()
    again = run_refresh(settings, stages=("snapshot",), resume=True, runners=_runners(settings, store, calls))
    assert calls == ["snapshot"] and again["run"] != done["run"]
    with pytest.raises(ConfigError, match="'nightly'"):   # a PymkError: the CLI prints it, no traceback
        run_refresh(settings, stages=("nightly",))


def test_the_refresh_can_make_lists_for_the_active_users_only(world):
    """`--active-days`: lists for the users active in the snapshot's last days of events, the rest ranked
    on request; the run's manifest says which; by default every user with a friend."""
    import numpy as np

    from candidates.precompute import active_users
    from graph.snapshot.format import load_snapshot

    settings, store = world
    stage_snapshot(settings, store)
    stage_embeddings(settings, epochs=2, max_auc_drop=1.0)
    stage_ranker(settings, epochs=1, viewers_per_cut=30)
    snap = load_snapshot(ArtifactStore(settings.snapshot_dir).current())
    lists = ArtifactStore(settings.candidates_dir)
    with_friend = np.flatnonzero(snap.degree > 0)
    active = active_users(snap, 1.0)
    assert 0 < active.size < with_friend.size

    state = run_refresh(settings, stages=("precompute",), active_days=1.0)
    assert state["precompute_users"] == "active in the last 1 days"
    assert lists.manifest(lists.current())["users"] == active.size
    listed = np.flatnonzero(np.diff(np.load(lists.current() / "offsets.npy")) > 0)
    assert listed.size > 0 and np.isin(listed, active).all()

    state = run_refresh(settings, stages=("precompute",))
    assert state["precompute_users"] == "every user with a friend"
    assert lists.manifest(lists.current())["users"] == with_friend.size


def test_the_refresh_erases_deleted_accounts_before_the_snapshot_reads_the_logs(tmp_path):
    from graph.records import Event, Friendship

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b", 1.0), Friendship("b", "c", 2.0), Friendship("c", "a", 3.0)])
    EventLog(settings.event_log_dir).write_segment("file-1", [Event("impression", "a", "b", 4.0),
                                                              Event("impression", "c", "b", 5.0)])
    served = settings.served_log_dir / "live-2026010100-h-1.jsonl"
    served.parent.mkdir(parents=True)
    served.write_text(json.dumps({"viewer": "a", "candidates": [{"user_id": "c"}, {"user_id": "b"}]}) + "\n")
    store.delete_users(["b"])
    state = run_refresh(settings, stages=("erase", "snapshot"),
                        runners={"erase": lambda stores: stage_erase(settings, store, settle_s=0),
                                 "snapshot": lambda stores: stage_snapshot(settings, store, stores=stores)})
    erased = state["done"]["erase"]
    assert erased["accounts"] == 1 and erased["event_log"]["records_erased"] == 2
    assert erased["served_log"] == {"records_erased": 0, "lists_cut": 1, "segments": 1, "live_segments_left": 0}
    assert list(EventLog(settings.event_log_dir).read()) == []
    assert json.loads(served.read_text()) == {"viewer": "a", "candidates": [{"user_id": "c"}]}
    assert stage_erase(settings, store, settle_s=0)["event_log"]["records_erased"] == 0   # re-run: nothing left


def test_resume_goes_on_with_the_runs_own_versions_and_starts_over_once_they_are_gone(world):
    settings, store = world
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_refresh(settings, stages=("snapshot", "embeddings"),
                    runners=_runners(settings, store, calls, fail_at="embeddings"))
    ours = ArtifactStore(settings.snapshot_dir).versions()[-1]
    stage_snapshot(settings, store)  # someone published a newer snapshot meanwhile (current at once)
    calls.clear()
    done = run_refresh(settings, stages=("snapshot", "embeddings"), resume=True,
                       runners=_runners(settings, store, calls))
    assert calls == ["embeddings"] and done["done"]["snapshot"]["version"] == ours
    emb = ArtifactStore(settings.embeddings_dir)
    assert emb.manifest(emb.current())["snapshot_version"] == ours == \
        ArtifactStore(settings.snapshot_dir).current_version()   # the run's own set, released whole

    with pytest.raises(RuntimeError):
        run_refresh(settings, stages=("snapshot", "embeddings"),
                    runners=_runners(settings, store, calls, fail_at="embeddings"))
    for _ in range(3):   # its snapshot pruned by three later ones
        stage_snapshot(settings, store)
    calls.clear()
    run_refresh(settings, stages=("snapshot", "embeddings"), resume=True, runners=_runners(settings, store, calls))
    assert calls == ["snapshot", "embeddings"]


def test_the_ranker_trains_its_cut_embeddings_like_the_served_ones(world, monkeypatch):
    import ranker.jobs as jobs

    settings, store = world
    stage_snapshot(settings, store)
    stage_embeddings(settings, epochs=2, max_auc_drop=1.0)
    seen, real = [], jobs.embed_graph

    def spy(snap, cfg=None, progress=False):
        seen.append(cfg)
        return real(snap, cfg, progress)

    monkeypatch.setattr(jobs, "embed_graph", spy)
    stage_ranker(settings, epochs=1, viewers_per_cut=30)
    assert len(seen) == 1 and seen[0].epochs == 2 and seen[0].fanouts == (15, 10)


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


@pytest.mark.parametrize("model_lost", [False, True])
def test_a_ranker_that_does_not_beat_the_heuristic_on_validation_is_not_published(world, monkeypatch, model_lost):
    """With an impression log the focal ranker is published only if it beats the mutual-friends heuristic on
    the validation period; otherwise the heuristic is, and the manifest says why."""
    import ranker.jobs as jobs
    from ranker.scorers import load_scorer
    from ranker.train import HEURISTIC, guarded

    def judged(results, name):   # the model's validation figure set just below or above the heuristic's
        results[name]["val_ndcg@10_connections"] = results[HEURISTIC]["val_ndcg@10_connections"] + (
            -0.01 if model_lost else 0.01)
        return guarded(results, name)

    settings, store = world
    stage_snapshot(settings, store)
    monkeypatch.setattr(jobs, "guarded", judged)
    stage_ranker(settings, epochs=1, viewers_per_cut=30)
    rankers = ArtifactStore(settings.ranker_dir)
    manifest = rankers.manifest(rankers.current())
    results = manifest["report"]["results"]
    assert {"focal", HEURISTIC} <= results.keys()   # the impression log was used
    verdict = "did not beat" if model_lost else "beat"
    assert manifest["report"]["publish_guard"].startswith(f"focal {verdict} the mutual-friends heuristic")
    assert manifest["scorer"]["kind"] == ("feature" if model_lost else "torch")
    scorer = load_scorer(rankers.current(), manifest)
    assert scorer.kind == manifest["scorer"]["kind"]
    if model_lost:   # the heuristic in the model's place serves the batch lists as well
        from pymk.refresh import stage_precompute

        lists = ArtifactStore(settings.candidates_dir)
        assert stage_precompute(settings, limit=50) == lists.current_version()
        assert lists.manifest(lists.current())["ranker_version"] == rankers.current_version()


def test_the_guard_compares_validation_figures_only():
    from ranker.train import HEURISTIC, guarded

    results = {"focal": {"val_ndcg@10_connections": 0.30, "ndcg@10_connections": 0.10},
               HEURISTIC: {"val_ndcg@10_connections": 0.30, "ndcg@10_connections": 0.50}}
    assert guarded(results, "focal") == (False, "focal did not beat the mutual-friends heuristic on validation "
                                                "(NDCG@10 of connections 0.3000 against 0.3000)")
    results["focal"]["val_ndcg@10_connections"] = 0.31   # the test figures never decide
    assert guarded(results, "focal")[0]


def test_the_commands_default_stages_are_every_stage_in_order():
    from pymk.cli_models import refresh
    from pymk.refresh import STAGES

    default = next(p.default for p in refresh.params if p.name == "stages")
    assert tuple(default.split(",")) == STAGES


def test_a_second_refresh_stops_at_once_while_one_runs_and_a_killed_one_leaves_no_lock(tmp_path):
    """Cron starting the next night's run while a slow one still runs: the second stops, saying who runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from click.testing import CliRunner

    from pymk.cli import main
    from pymk.errors import JobRunningError

    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    inner = []

    def snapshot_stage(stores) -> str:   # while the first run holds the lock, a second is started from the CLI
        env = {"PYMK_DATA_DIR": str(tmp_path)}
        inner.append(CliRunner().invoke(main, ["refresh", "--stages", "snapshot"], env=env))
        return "v1"

    assert run_refresh(settings, stages=("snapshot",), runners={"snapshot": snapshot_stage})["finished"]
    (second,) = inner
    assert second.exit_code == 1 and f"another refresh is running (pid {os.getpid()} on " in second.output
    assert "this one did not start" in second.output and second.exception.__class__ is SystemExit
    assert len(list((tmp_path / "refresh").glob("*/manifest.json"))) == 1   # the second wrote nothing

    holder = ("import sys, time; from pathlib import Path; from pymk.runlock import exclusive; "
              "lock = exclusive(Path(sys.argv[1]), 'refresh'); lock.__enter__(); print('held', flush=True); "
              "time.sleep(60)")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "refresh" / ".lock")], cwd=repo,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(JobRunningError, match=rf"pid {proc.pid} on .*, since \d{{4}}-"):
            run_refresh(settings, stages=("snapshot",), runners={"snapshot": lambda stores: "v2"})
    finally:
        proc.kill()   # no chance to clean up: the operating system drops its lock
        proc.wait()
        proc.stdout.close()
    assert run_refresh(settings, stages=("snapshot",), runners={"snapshot": lambda stores: "v2"})["finished"]


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
