"""Open the configured graph store (the only place that picks the Neo4j implementation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graph.store import GraphStore
from pymk.settings import Settings


def open_store(settings: Settings, *, for_requests: bool = False) -> GraphStore:
    """A Neo4j-backed store for `settings.neo4j` (external NEO4J_URI or the local server). For requests
    (the API) each query is bounded by PYMK_NEO4J_REQUEST_TIMEOUT_S: a slow one costs its request a 503,
    not a server thread for as long as it runs. Batch jobs' queries run as long as they need."""
    from graph.neo4j_store import Neo4jGraphStore

    return Neo4jGraphStore(settings.neo4j, settings.neo4j.request_timeout_s if for_requests else None)


@contextmanager
def given_or_opened(settings: Settings, store: GraphStore | None = None) -> Iterator[GraphStore]:
    """`store` as given (the caller's: left open), or the configured one, opened here and closed after."""
    if store is not None:
        yield store
        return
    opened = open_store(settings)
    try:
        yield opened
    finally:
        opened.close()
