"""Open the configured graph store (the only place that picks the Neo4j implementation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graph.breaker import CircuitBreaker
from graph.store import GraphStore
from pymk.settings import Settings


def open_store(settings: Settings, *, for_requests: bool = False) -> GraphStore:
    """A Neo4j-backed store for `settings.neo4j` (external NEO4J_URI or the local server). For requests
    (the API) each query is bounded by PYMK_NEO4J_REQUEST_TIMEOUT_S: a slow one costs its request a 503,
    not a server thread for as long as it runs, and a server found unreachable the slow way fails the calls
    after it at once for PYMK_NEO4J_BREAKER_COOLDOWN_S (graph/breaker.py). Batch jobs' queries run as long
    as they need."""
    from graph.neo4j_store import Neo4jGraphStore

    cfg = settings.neo4j
    if not for_requests:
        return Neo4jGraphStore(cfg)
    breaker = (CircuitBreaker(cooldown_s=cfg.breaker_cooldown_s, slow_s=0.9 * cfg.connect_timeout_s)
               if cfg.breaker_cooldown_s > 0 else None)
    return Neo4jGraphStore(cfg, cfg.request_timeout_s, breaker)


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
