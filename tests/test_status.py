"""`pymk status`: what is served, how old, and how the newest refresh run went, with known answers."""

from __future__ import annotations

import json
import os
import time

from click.testing import CliRunner

from pymk.artifacts import ArtifactStore
from pymk.cli import main
from pymk.runlock import exclusive, holder
from pymk.settings import Settings
from pymk.status import status
from ranker.feature_names import FEATURE_NAMES, FEATURE_VERSION


def _publish(root, **manifest) -> str:
    store = ArtifactStore(root)
    return store.publish(store.staging_dir(), manifest).name


def _trained_here(emb: str | None) -> dict:
    """A ranker manifest's fields as this code writes them (ranker/train.py publish)."""
    return {"kind": "ranker", "features": list(FEATURE_NAMES), "feature_version": FEATURE_VERSION,
            "embeddings_version": emb}


def _world(tmp_path):
    """A snapshot, embeddings and a ranker made from it, and lists made with all three."""
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    snap = _publish(settings.snapshot_dir, kind="snapshot")
    emb = _publish(settings.embeddings_dir, snapshot_version=snap)
    ranker = _publish(settings.ranker_dir, snapshot_version=snap, **_trained_here(emb))
    lists = _publish(settings.candidates_dir, snapshot_version=snap, embeddings_version=emb, ranker_version=ranker)
    return settings, snap, lists


def test_nothing_published_is_a_problem_and_the_command_exits_1(tmp_path):
    result = CliRunner().invoke(main, ["status"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "snapshot    none (nothing to serve)" in result.output
    assert "ranker      none (ranked by reciprocal rank fusion)" in result.output
    assert "problem: no snapshot is published" in result.output and "refresh     no run yet" in result.output


def test_a_consistent_fresh_deployment_is_ok_and_old_or_stale_parts_are_named(tmp_path):
    settings, snap, lists = _world(tmp_path)
    report = status(settings)
    assert report.problems == [] and report.lines()[-1] == "ok"
    assert report.artifacts["candidates"]["version"] == lists and report.artifacts["snapshot"]["age_h"] < 0.1
    result = CliRunner().invoke(main, ["status", "--json"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0 and json.loads(result.output)["artifacts"]["snapshot"]["version"] == snap

    later = time.time() + 40 * 3600   # the nightly refresh stopped 40 hours ago
    (problem,) = status(settings, max_age_h=36, now=later).problems
    assert f"the snapshot {snap} is 40.0 h old (over 36 h)" in problem
    assert status(settings, max_age_h=48, now=later).problems == []

    newer = _publish(settings.snapshot_dir, kind="snapshot")   # a snapshot published, the later stages not run
    emb, ranker = (report.artifacts[k]["version"] for k in ("embeddings", "ranker"))
    first, second, third = status(settings).problems
    assert f"embeddings {emb} were made from snapshot {snap}" in first
    # the API serves no embeddings with the new snapshot, so it refuses the ranker trained with them too
    assert f"the ranker {ranker} was trained with embeddings {emb}, and the API serves none" in second
    assert f"lists {lists} were made with snapshot {snap}, ranker {ranker}; now served: snapshot {newer}, " \
           "ranker None" in third
    assert "embeddings" not in third.split(";")[0]   # only what differs is named


def test_a_ranker_this_code_cannot_use_is_named_with_the_reason(tmp_path):
    """What the API refuses (ranker/serve.py) and why, before anyone wonders why lists are in fusion order."""
    settings, snap, _ = _world(tmp_path)
    emb = ArtifactStore(settings.embeddings_dir).current_version()
    for fields, reason in (
            ({"feature_version": FEATURE_VERSION - 1}, f"was trained on feature version {FEATURE_VERSION - 1}, this "
                                                       f"code computes version {FEATURE_VERSION}"),
            ({"feature_version": None}, "was trained on feature version None"),
            ({"features": [*FEATURE_NAMES[:-1], "old_column"]},
             f"was trained on other features (this code adds {FEATURE_NAMES[-1]}; it lacks old_column)"),
            ({"embeddings_version": "v1"}, f"was trained with embeddings v1, and the API serves {emb}")):
        ranker = _publish(settings.ranker_dir, snapshot_version=snap, **{**_trained_here(emb), **fields})
        problems = [p for p in status(settings).problems if p.startswith("the ranker")]
        assert len(problems) == 1 and f"the ranker {ranker} {reason}" in problems[0], problems
    manifest = _trained_here(emb)
    del manifest["feature_version"]   # published before versions were written
    ranker = _publish(settings.ranker_dir, snapshot_version=snap, **manifest)
    assert f"the ranker {ranker} was trained on feature version 1," in status(settings).problems[0]


def test_a_refresh_run_that_stopped_is_a_problem_and_a_running_one_is_not(tmp_path):
    settings, _, _ = _world(tmp_path)
    run = tmp_path / "refresh" / "20261206T010000-1"
    run.mkdir(parents=True)
    state = {"run": run.name, "stages": ["snapshot", "ranker"], "done": {"snapshot": {"version": "v1"}},
             "finished": False, "running": "ranker", "started_at": time.time() - 600}
    (run / "manifest.json").write_text(json.dumps(state))
    (problem,) = status(settings).problems
    assert f"run {run.name} stopped in stage ranker" in problem and "pymk refresh --resume" in problem
    assert problem.endswith("; what it made is not served (snapshot v1)")   # released only at a run's end
    with exclusive(tmp_path / "refresh" / ".lock", "refresh"):   # the same run, still going
        report = status(settings)
        assert report.problems == [] and f"running stage ranker (pid {os.getpid()} on " in report.refresh["summary"]
    (run / "manifest.json").write_text(json.dumps({**state, "finished": True, "finished_at": 1.7e9,
                                                   "total_seconds": 42.0}))
    report = status(settings)
    assert report.problems == [] and "finished 2023-11-14 22:13:20 UTC (snapshot; 42 s of stages)" in \
        report.refresh["summary"]


def test_the_lock_holder_is_read_without_taking_the_lock_and_a_dead_one_is_no_one(tmp_path):
    lock = tmp_path / ".lock"
    assert holder(lock) is None
    with exclusive(lock, "refresh", run="r1"):
        assert holder(lock)["run"] == "r1" and holder(lock)["pid"] == os.getpid()
    assert holder(lock) is None   # emptied on release
    dead = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 10_000   # no such process here
    lock.write_text(json.dumps({"pid": dead, "host": os.uname().nodename, "started_at": 1.0}))
    assert holder(lock) is None   # killed before it could empty the file
    lock.write_text(json.dumps({"pid": dead, "host": "another-host", "started_at": 1.0}))
    assert holder(lock)["host"] == "another-host"   # cannot be checked from here: reported as is


def test_an_unreadable_manifest_is_a_named_problem_not_a_crash(tmp_path):
    settings, snap, _ = _world(tmp_path)
    (settings.snapshot_dir / snap / "manifest.json").write_text("{not json")
    (tmp_path / "refresh" / "r1").mkdir(parents=True)
    (tmp_path / "refresh" / "r1" / "manifest.json").write_text("")
    result = CliRunner().invoke(main, ["status", "--json"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1
    def refuse(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    problems = json.loads(result.output, parse_constant=refuse)["problems"]   # no Infinity for an unknown age
    assert problems[0].startswith("the current snapshot cannot be read")
    assert any("refresh run manifest" in p and "cannot be read" in p for p in problems)



def test_the_event_log_line_counts_segments_and_bytes_and_spans_what_an_export_has_read(tmp_path):
    from graph.eventcols import read_columns
    from graph.eventlog import EventLog
    from graph.records import Event

    settings, _, _ = _world(tmp_path)
    log = EventLog(settings.event_log_dir)
    log.write_segment("a", [Event("send", "u1", "u2", 86_400.0), Event("send", "u2", "u1", 3 * 86_400.0)])
    read_columns(log)   # an export read it: its range is known
    log.write_segment("b", [Event("send", "u1", "u3", 9 * 86_400.0)])   # written since
    size = sum(p.stat().st_size for p in log.segments())
    result = CliRunner().invoke(main, ["status"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert (f"event log   2 segments, {size / 1e6:,.1f} MB, events from 1970-01-02 00:00:00 UTC to "
            "1970-01-04 00:00:00 UTC (1 not yet read by an export)") in result.output
    got = json.loads(CliRunner().invoke(main, ["status", "--json"], env={"PYMK_DATA_DIR": str(tmp_path)}).output)
    assert got["event_log"] == {"segments": 2, "bytes": size, "unindexed": 1, "earliest": 86_400.0,
                                "latest": 3 * 86_400.0}
