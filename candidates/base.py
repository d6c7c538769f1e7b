"""Candidate source contract and the one registry where sources are named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

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


SourceFactory = Callable[[Snapshot], CandidateSource]


class SourceRegistry:
    """Name -> factory. Refuses duplicate names and fails loud on unknown ones."""

    def __init__(self) -> None:
        self._factories: dict[str, SourceFactory] = {}

    def register(self, name: str, factory: SourceFactory) -> None:
        if name in self._factories:
            raise ValueError(f"candidate source {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        return list(self._factories)

    def build(self, name: str, snapshot: Snapshot) -> CandidateSource:
        if name not in self._factories:
            raise UnknownSourceError(name, self.names())
        return self._factories[name](snapshot)

    def build_all(self, snapshot: Snapshot, names: list[str] | None = None) -> list[CandidateSource]:
        return [self.build(n, snapshot) for n in (names or self.names())]
