"""The app every test here serves: two cliques joined by a bridge, in an in-memory graph store."""

from __future__ import annotations

import pytest

from api import create_app
from graph.memory_store import MemoryGraphStore
from graph.snapshot import from_store, save_snapshot
from pymk.artifacts import ArtifactStore
from pymk.settings import Settings
from tests.api.common import cliques_world


@pytest.fixture
def app_settings(tmp_path) -> Settings:
    return Settings.from_env({"PYMK_DATA_DIR": str(tmp_path), "PYMK_API_KEYS": "k1,k2",
                              "PYMK_API_MAX_REQUEST_BYTES": "20000", "PYMK_EXPLORE_SHARE": "0",
                              "PYMK_SERVED_LOG": "features"})


@pytest.fixture
def world() -> MemoryGraphStore:
    """The graph store behind the app (in memory): two cliques joined by a bridge, and c0."""
    store = MemoryGraphStore()
    cliques_world(store)
    return store


@pytest.fixture
def app(app_settings, world):
    save_snapshot(from_store(world), ArtifactStore(app_settings.snapshot_dir), source="test")
    return create_app(app_settings, store=world)


@pytest.fixture
def client(app):
    return app.test_client()
