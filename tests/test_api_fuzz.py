"""Property-based fuzzing of the API from its own OpenAPI description (schemathesis): no 5xx, ever."""

from __future__ import annotations

import tempfile

import pytest

schemathesis = pytest.importorskip("schemathesis")  # a dev requirement; CI installs it

from hypothesis import HealthCheck, settings  # noqa: E402

from api import create_app  # noqa: E402
from graph.memory_store import MemoryGraphStore  # noqa: E402
from graph.records import Friendship, UserRecord  # noqa: E402
from graph.snapshot import from_store, save_snapshot  # noqa: E402
from pymk.artifacts import ArtifactStore  # noqa: E402
from pymk.settings import Settings  # noqa: E402


def _app(tmp_dir):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_dir), "PYMK_API_KEYS": "fuzz-key",
                                  "PYMK_API_RATE_LIMIT": "0"})
    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("b", "c"), Friendship("c", "d")])
    store.upsert_users([UserRecord(id="e", city="oslo")])
    save_snapshot(from_store(store), ArtifactStore(settings.snapshot_dir), source="fuzz")
    return create_app(settings, store=store)


schema = schemathesis.openapi.from_wsgi("/openapi.json", _app(tempfile.mkdtemp(prefix="pymk-fuzz-")))


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    for headers in ({"X-API-Key": "fuzz-key"}, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 400:
            assert "error" in response.json()
