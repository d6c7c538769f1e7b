"""The refresh job: every stage publishes, the run releases what it made together, the manifest times
the stages, a failed run resumes where it stopped, one run at a time."""

from __future__ import annotations

import json

import pytest

from graph.eventlog import EventLog
from graph.ingest import ingest_edges, ingest_events, ingest_users
from graph.memory_store import MemoryGraphStore
from pymk.artifacts import ArtifactStore
from pymk.errors import ConfigError
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
    assert done["release_problems"] == []   # a set the API serves whole
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
    # the ranker and lists were made with the embeddings this run replaced: said, since they are not served
    assert [p.split(" ")[1] for p in done["release_problems"]] == ["ranker", "precomputed"]
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
