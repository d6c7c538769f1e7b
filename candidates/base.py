"""Candidate source contract and the one registry where sources are named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from candidates.types import Candidate
from graph.snapshot import Snapshot
from pymk.errors import PymkError

log = logging.getLogger(__name__)


class UnknownSourceError(PymkError, KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown candidate source {name!r}; registered: {', '.join(known) or 'none'}")


@runtime_checkable
class CandidateSource(Protocol):
    """Proposes candidates for a viewer (internal index) from a snapshot."""

    name: str
    description: str

    def generate(self, user: int, k: int) -> list[Candidate]: ...


SourceFactory = Callable[..., CandidateSource]


class SourceRegistry:
    """Name -> factory. Refuses duplicate names and fails loud on unknown ones.

    A source registered with `needs_embeddings` is built only when embeddings are given (its factory
    is called as factory(snapshot, embeddings, index)); build_all leaves it out otherwise.
    """

    def __init__(self) -> None:
        self._factories: dict[str, tuple[SourceFactory, bool]] = {}

    def register(self, name: str, factory: SourceFactory, needs_embeddings: bool = False) -> None:
        if name in self._factories:
            raise ValueError(f"candidate source {name!r} is already registered")
        self._factories[name] = (factory, needs_embeddings)

    def names(self) -> list[str]:
        return list(self._factories)

    def build(self, name: str, snapshot: Snapshot, embeddings: np.ndarray | None = None,
              index: object | None = None) -> CandidateSource:
        if name not in self._factories:
            raise UnknownSourceError(name, self.names())
        factory, needs_embeddings = self._factories[name]
        if not needs_embeddings:
            return factory(snapshot)
        if embeddings is None:
            raise ValueError(f"candidate source {name!r} needs embeddings")
        return factory(snapshot, embeddings, index)

    def build_all(self, snapshot: Snapshot, names: list[str] | None = None, embeddings: np.ndarray | None = None,
                  index: object | None = None) -> list[CandidateSource]:
        """The named sources (default: all, those needing embeddings only when embeddings are given)."""
        wanted = names or [n for n, (_, needs) in self._factories.items() if embeddings is not None or not needs]
        return [self.build(n, snapshot, embeddings, index) for n in wanted]
