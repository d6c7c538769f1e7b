"""The Spark batch precompute (local[2], and as a Spark Connect client) publishes the very lists the in-process
engines publish."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from functools import partialmethod
from pathlib import Path

import numpy as np
import pytest
import torch

from candidates.fof import FriendsOfFriendsSource
from graph.snapshot import save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.refresh import stage_precompute
from pymk.settings import REPO_ROOT, Settings
from ranker.calibration import Calibration
from ranker.features import FEATURE_NAMES
from ranker.model import MultiTaskRanker
from ranker.scorers import TorchScorer
from ranker.train import publish
from sim.world import WorldConfig, generate_world, world_snapshot

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("spark")
    settings = Settings.from_env({"PYMK_DATA_DIR": str(data)})
    snap = world_snapshot(generate_world(WorldConfig(num_users=600, seed=11)))
    snap = replace(snap, opted_out=np.random.default_rng(1).random(snap.num_users) < 0.05)
    version = save_snapshot(snap, ArtifactStore(settings.snapshot_dir), source="test").name
    torch.manual_seed(0)
    scorer = TorchScorer(MultiTaskRanker(len(FEATURE_NAMES), hidden_channels=16), Calibration(connect=(1.0, 0.0)))
    publish(scorer, None, {}, ArtifactStore(settings.ranker_dir), version)
    return settings


def test_spark_lists_are_identical_to_the_in_process_lists(data_dir, monkeypatch):
    # caps small enough to bind on this world: hub friends skipped, wedge budgets cut per viewer
    monkeypatch.setattr(FriendsOfFriendsSource, "__init__",
                        partialmethod(FriendsOfFriendsSource.__init__, max_friend_degree=25, max_two_hop=150))
    store = ArtifactStore(data_dir.candidates_dir)
    # as a refresh run ranks: with its own ranker, published but not yet released (not CURRENT), which the
    # executors must read too
    stores = {name: ArtifactStore(root).pinned(ArtifactStore(root).current_version())
              for name, root in data_dir.artifact_dirs.items()}
    torch.manual_seed(1)
    unreleased = publish(TorchScorer(MultiTaskRanker(len(FEATURE_NAMES), hidden_channels=16),
                                     Calibration(connect=(1.0, 0.0))), None, {}, stores["ranker"],
                         stores["snapshot"].current_version())
    assert ArtifactStore(data_dir.ranker_dir).current_version() != unreleased
    local = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="block", workers=1, block=50,
                                          stores=stores)
    spark = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="spark", block=50,
                                          master="local[2]", stores=stores)
    assert store.manifest(spark)["engine"] == "spark" and store.manifest(spark)["users"] > 500
    assert store.manifest(local)["ranker_version"] == store.manifest(spark)["ranker_version"] == unreleased
    assert store.current_version() is None   # nothing released
    assert (local / "lists.bin").read_bytes() == (spark / "lists.bin").read_bytes()
    for name in ("offsets.npy", "feature_offsets.npy", "features.npy"):
        assert np.array_equal(np.load(local / name), np.load(spark / name)), name
    assert (data_dir.data_dir / "parquet").exists()   # the job's input, exported once per snapshot


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server (local[2]) started from pyspark's own distribution, as an operator starts one
    (`sbin/start-connect-server.sh`); its Python workers run this interpreter on this checkout."""
    import pyspark

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("spark-connect")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOG_DIR": str(logs), "SPARK_PID_DIR": str(logs),
           "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO_ROOT)}
    with open(logs / "server.log", "w") as out:
        server = subprocess.Popen(["bash", str(home / "sbin" / "start-connect-server.sh"), "--wait", "--master",
                                   "local[2]", "--conf", f"spark.connect.grpc.binding.port={port}",
                                   "--conf", "spark.ui.enabled=false"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Spark Connect server did not start: {(logs / 'server.log').read_text()[-2000:]}")
                time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def test_spark_connect_lists_are_identical_to_the_in_process_lists(data_dir, connect_server, monkeypatch):
    """SPARK_REMOTE makes the job a Connect client (docs/refresh.md's cluster path): same lists, bit for bit."""
    store = ArtifactStore(data_dir.candidates_dir)
    local = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="block", workers=1, block=50)
    monkeypatch.setenv("SPARK_REMOTE", connect_server)
    remote = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="spark", block=50)
    assert store.manifest(remote)["engine"] == "spark" and store.manifest(remote)["users"] > 500
    assert (local / "lists.bin").read_bytes() == (remote / "lists.bin").read_bytes()
    for name in ("offsets.npy", "feature_offsets.npy", "features.npy"):
        assert np.array_equal(np.load(local / name), np.load(remote / name)), name
    # and a later job in this process may run on a local master again: pyspark had left its Connect mode on
    monkeypatch.delenv("SPARK_REMOTE")
    again = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="spark", block=50,
                                          master="local[2]")
    assert (again / "lists.bin").read_bytes() == (remote / "lists.bin").read_bytes()


def test_an_unreachable_spark_connect_server_is_a_named_error(data_dir, monkeypatch):
    from pymk.errors import SparkUnavailableError

    with socket.socket() as probe:   # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SPARK_REMOTE", f"sc://127.0.0.1:{port}")
    with pytest.raises(SparkUnavailableError, match=f"SPARK_REMOTE=sc://127.0.0.1:{port}"):
        stage_precompute(data_dir, all_users=True, keep=20, engine="spark", block=50)


def test_a_day_without_active_users_publishes_no_lists_on_spark_as_in_process(data_dir, caplog):
    """`pymk refresh --active-days N --engine spark` on a quiet day: Spark could not infer the schema of an
    empty table of viewers, and the precompute stage failed where the in-process engines publish no lists."""
    stores = {name: ArtifactStore(root).pinned(ArtifactStore(root).current_version())
              for name, root in data_dir.artifact_dirs.items()}
    store = stores["candidates"]
    local = store.root / stage_precompute(data_dir, all_users=False, active_days=7, keep=20, engine="block",
                                          workers=1, stores=stores)
    spark = store.root / stage_precompute(data_dir, all_users=False, active_days=7, keep=20, engine="spark",
                                          master="local[2]", stores=stores)
    assert "no lists are made" in caplog.text
    assert store.manifest(local)["users"] == store.manifest(spark)["users"] == 0
    assert (local / "lists.bin").read_bytes() == (spark / "lists.bin").read_bytes()
    for name in ("offsets.npy", "feature_offsets.npy", "features.npy"):
        assert np.array_equal(np.load(local / name), np.load(spark / name)), name
