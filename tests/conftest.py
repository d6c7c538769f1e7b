"""Shared fixtures. Integration tests talk to a real Neo4j over Bolt (started here if needed)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from graph.eventlog import EventLog
from graph.memory_store import MemoryGraphStore
from graph.store import GraphStore
from pymk.settings import Settings

SERVER_SEEN: list[str] = []


def between_writes(pause_s: float = 0.01) -> float:
    """A time strictly after every write so far and before every write after it (the stores stamp
    `written_at` by time.time() when they write): a `since` that holds only what is written next."""
    time.sleep(pause_s)
    t = time.time()
    time.sleep(pause_s)
    return t


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say which real server the integration tests talked to (or that none did)."""
    if SERVER_SEEN:
        terminalreporter.write_line(f"integration tests talked to {SERVER_SEEN[0]}")
    else:
        terminalreporter.write_line("integration tests did not run (no Neo4j store was requested)")


@pytest.fixture(autouse=True)
def _closed_after(monkeypatch) -> Iterator[None]:
    """Every event log and API app a test makes is closed after it (open log segments, the app's source
    threads), as a server's worker closes its own (api.close_app); what a test closes itself is closed
    twice, harmlessly."""
    made: list = []

    def track(cls) -> None:
        init = cls.__init__

        def tracked(self, *args, **kwargs) -> None:
            init(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", tracked)

    track(EventLog)
    services = sys.modules.get("api.services")   # loaded by the modules that build apps, at collection
    if services is not None:
        track(services.Services)
    yield
    for obj in reversed(made):
        obj.close()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def neo4j_store(settings: Settings) -> Iterator[GraphStore]:
    """The real store. Uses NEO4J_URI if set, else the local server (started if not running)."""
    from graph import server
    from graph.connect import open_store

    started = False
    if not settings.neo4j.external and not server.status(settings.neo4j).running:
        server.start(settings.neo4j)
        started = True
    store = open_store(settings)
    store.ensure_schema()
    SERVER_SEEN.append(store.server_info())
    yield store
    store.close()
    if started:
        server.stop(settings.neo4j)


@pytest.fixture
def prefix() -> str:
    """A unique id prefix, so tests never see each other's data on a shared server."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture(scope="session")
def neo4j_cypher_store(settings: Settings, neo4j_store: GraphStore) -> Iterator[GraphStore]:
    """The same real server with the launcher's procedures switched off: the plain-Cypher paths."""
    import dataclasses

    from graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(dataclasses.replace(settings.neo4j, procedures=False))
    yield store
    store.close()


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.integration),
                        pytest.param("neo4j_cypher", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, prefix: str) -> Iterator[GraphStore]:
    """Each contract test runs against the in-memory fake and against real Neo4j (with the launcher's
    server-side procedures, and without them as on any other Neo4j server)."""
    if request.param == "memory":
        yield MemoryGraphStore()
        return
    real: GraphStore = request.getfixturevalue(f"{request.param}_store")
    yield real
    real.delete_users_with_prefix(prefix)
