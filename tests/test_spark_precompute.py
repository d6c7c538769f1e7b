"""The Spark batch precompute (local[2]) publishes the very lists the in-process engines publish."""

from __future__ import annotations

from dataclasses import replace
from functools import partialmethod

import numpy as np
import pytest
import torch

from candidates.fof import FriendsOfFriendsSource
from graph.snapshot import save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.refresh import stage_precompute
from pymk.settings import Settings
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
    local = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="block", workers=1, block=50)
    spark = store.root / stage_precompute(data_dir, all_users=True, keep=20, engine="spark", block=50,
                                          master="local[2]")
    assert store.manifest(spark)["engine"] == "spark" and store.manifest(spark)["users"] > 500
    assert (local / "lists.bin").read_bytes() == (spark / "lists.bin").read_bytes()
    for name in ("offsets.npy", "feature_offsets.npy", "features.npy"):
        assert np.array_equal(np.load(local / name), np.load(spark / name)), name
    assert (data_dir.data_dir / "parquet").exists()   # the job's input, exported once per snapshot
