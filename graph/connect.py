"""Open the configured graph store (the only place that picks the Neo4j implementation)."""

from __future__ import annotations

from graph.store import GraphStore
from pymk.settings import Settings


def open_store(settings: Settings) -> GraphStore:
    """A Neo4j-backed store for `settings.neo4j` (external NEO4J_URI or the local server)."""
    from graph.neo4j_store import Neo4jGraphStore

    return Neo4jGraphStore(settings.neo4j)
