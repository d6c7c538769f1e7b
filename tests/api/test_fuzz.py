"""Property-based fuzzing of the API from its own OpenAPI description (schemathesis): no 5xx, ever,
and every response matches what the description (generated from the pydantic models) says.

The cases come from `api.openapi.spec()` at collection (no app is built then); the app under test is
built by a fixture, in a temporary data directory, only when the test runs.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")  # a dev requirement; CI installs it

from hypothesis import HealthCheck, settings  # noqa: E402

from api import close_app, create_app  # noqa: E402
from api.openapi import spec  # noqa: E402
from graph.memory_store import MemoryGraphStore  # noqa: E402
from graph.records import Friendship, UserRecord  # noqa: E402
from graph.snapshot import from_store, save_snapshot  # noqa: E402
from pymk.artifacts import ArtifactStore  # noqa: E402
from pymk.settings import Settings  # noqa: E402

CONFORMANCE = [schemathesis.checks.status_code_conformance, schemathesis.checks.content_type_conformance,
               schemathesis.checks.response_schema_conformance]
schema = schemathesis.openapi.from_dict(spec())
schema.location = "/openapi.json"  # as from_wsgi sets it: paths are relative to the app's root


@pytest.fixture(scope="module")
def app_under_test(tmp_path_factory):
    app_settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path_factory.mktemp("pymk-fuzz")),
                                      "PYMK_API_KEYS": "fuzz-key", "PYMK_API_RATE_LIMIT": "0"})
    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b"), Friendship("b", "c"), Friendship("c", "d")])
    store.upsert_users([UserRecord(id="e", city="oslo")])
    save_snapshot(from_store(store), ArtifactStore(app_settings.snapshot_dir), source="fuzz")
    app = create_app(app_settings, store=store)
    yield app
    close_app(app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, app_under_test):
    case.operation.schema.app = app_under_test  # the cases go to this WSGI app (in process)
    for headers in ({"X-API-Key": "fuzz-key"}, {}):
        response = case.call(headers=headers, app=app_under_test)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 400:
            assert "error" in response.json()
        # the response is what the description says: a documented status, content type and body schema
        # (schemathesis's other checks also judge rules a schema cannot express, e.g. src != dst)
        case.validate_response(response, checks=CONFORMANCE)
