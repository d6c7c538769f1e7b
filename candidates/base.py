"""Candidate source contract and the one registry where sources are named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
    """Proposes candidates for a viewer (internal index) from a snapshot.

    Optional: `propose(users, k) -> Proposals` for a block of viewers, and `inline = True` for a source
    whose work is in memory and bounded (it then runs in the request's thread, not the source pool)."""

    name: str
    description: str

    def generate(self, user: int, k: int) -> list[Candidate]: ...


SourceFactory = Callable[..., CandidateSource]


@dataclass(frozen=True)
class Proposals:
    """What a source proposes for a block of viewers, as arrays: row i proposes `cand[i]` to the
    viewer `users[owner[i]]` with `score[i]`; rows are grouped by owner, each group in the source's
    own order. `proof(rows)` builds the proof of just the rows asked for (most are never shown)."""

    owner: np.ndarray
    cand: np.ndarray
    score: np.ndarray
    proof: Callable[[np.ndarray], list[Any]]

    @staticmethod
    def concat(parts: list[tuple[int, Proposals]]) -> Proposals:
        """Proposals of consecutive sub-blocks; each part comes with the position its owner 0 starts at."""
        sizes = np.cumsum([0] + [p.cand.size for _, p in parts])

        def proof(rows: np.ndarray) -> list[Any]:
            part = np.searchsorted(sizes, rows, "right") - 1
            return [parts[j][1].proof(np.array([r - sizes[j]]))[0] for j, r in zip(part.tolist(), rows.tolist(),
                                                                                  strict=True)]

        if not parts:
            return empty_proposals()
        return Proposals(np.concatenate([p.owner + shift for shift, p in parts]),
                         np.concatenate([p.cand for _, p in parts]).astype(np.int64),
                         np.concatenate([p.score for _, p in parts]).astype(np.float64), proof)


def empty_proposals() -> Proposals:
    return Proposals(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), lambda rows: [])


def to_candidates(name: str, snap: Snapshot, p: Proposals) -> list[Candidate]:
    """One viewer's proposals as Candidates (the serving path)."""
    ids = snap.id_strings
    rows = np.arange(p.cand.size)
    return [Candidate.of(ids[c], c, name, s, proof)
            for c, s, proof in zip(p.cand.tolist(), p.score.tolist(), p.proof(rows), strict=True)]


def propose(source: CandidateSource, users: np.ndarray, k: int) -> Proposals:
    """A block of viewers' proposals: the source's own `propose` when it has one, else one
    `generate` call per viewer."""
    if hasattr(source, "propose"):
        return source.propose(users, k)
    parts = []
    for i, user in enumerate(users.tolist()):
        got = source.generate(user, k)
        proofs = [c.proof.get(source.name) for c in got]
        parts.append((i, Proposals(np.zeros(len(got), np.int64), np.array([c.index for c in got], np.int64),
                                   np.array([c.score(source.name) for c in got], np.float64),
                                   lambda rows, proofs=proofs: [proofs[r] for r in rows.tolist()])))
    return Proposals.concat(parts)


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
