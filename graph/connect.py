"""Open the configured graph store (the only place that picks the Neo4j implementation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graph.store import GraphStore
from pymk.settings import Settings


def open_store(settings: Settings) -> GraphStore:
    """A Neo4j-backed store for `settings.neo4j` (external NEO4J_URI or the local server)."""
    from graph.neo4j_store import Neo4jGraphStore

    return Neo4jGraphStore(settings.neo4j)


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
