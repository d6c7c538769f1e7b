"""The one record that flows through every stage (a frozen `Candidate`), and a pipeline's answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from candidates.filters import FilterContext


# how a part of a request came to be skipped (pymk_skipped_total's `outcome`: alert on FAILED)
FAILED, OVER_BUDGET, SKIPPED = "failed", "over_budget", "skipped"
SKIP_OUTCOMES = (FAILED, OVER_BUDGET, SKIPPED)


def _frozen(d: dict[str, Any] | None) -> MappingProxyType:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Candidate:
    """A suggested user for a viewer, with every source that proposed it, their scores and proof.

    `index` is the snapshot's internal index; `user_id` the external id shown to clients.
    `scores` maps source or stage name -> score; `proof` maps source name -> evidence
    (mutual friend ids, walk mass, embedding similarity, shared attributes).
    """

    user_id: str
    index: int
    sources: tuple[str, ...]
    scores: MappingProxyType = field(default_factory=lambda: _frozen({}))
    proof: MappingProxyType = field(default_factory=lambda: _frozen({}))

    @classmethod
    def of(cls, user_id: str, index: int, source: str, score: float, proof: Any = None) -> Candidate:
        return cls(user_id, index, (source,), _frozen({source: float(score)}),
                   _frozen({source: proof} if proof is not None else {}))

    def merged(self, other: Candidate) -> Candidate:
        """Union of two candidates for the same user (sources in first-seen order)."""
        if other.index != self.index:
            raise ValueError(f"cannot merge candidates for different users {self.user_id!r} and {other.user_id!r}")
        sources = self.sources + tuple(s for s in other.sources if s not in self.sources)
        return Candidate(self.user_id, self.index, sources, MappingProxyType({**self.scores, **other.scores}),
                         MappingProxyType({**self.proof, **other.proof}))

    def with_score(self, name: str, value: float) -> Candidate:
        return self.with_scores(**{name: value})

    def with_scores(self, **values: float) -> Candidate:
        """A copy with these scores added (one allocation; this sits on the serving hot path)."""
        scores = dict(self.scores)
        scores.update((k, float(v)) for k, v in values.items())
        return Candidate(self.user_id, self.index, self.sources, MappingProxyType(scores), self.proof)

    def score(self, name: str, default: float = 0.0) -> float:
        return float(self.scores.get(name, default))


@dataclass
class RerankTrace:
    """What the re-rank did to one viewer's list (for `pymk why`: `CandidatePipeline.recommend(trace=True)`)."""

    considered: list[int] = field(default_factory=list)   # the indices that reached it, in ranked order
    seen: dict[int, int] = field(default_factory=dict)     # index -> times shown to the viewer (the seen penalty)
    held_back: dict[int, str] = field(default_factory=dict)   # index -> the step that held it back (why.HELD_BACK)
    kept: list[int] = field(default_factory=list)         # the indices it returned, in order


@dataclass
class Recommendation:
    """What the pipeline returns for one viewer: the list, and what was removed, skipped and timed."""

    viewer: str
    candidates: list[Candidate]
    removed: Counter = field(default_factory=Counter)
    skipped_sources: dict[str, str] = field(default_factory=dict)   # part -> why, in words (the API's answer)
    skip_outcomes: dict[str, str] = field(default_factory=dict)     # part -> FAILED | OVER_BUDGET | SKIPPED
    timings_ms: dict[str, float] = field(default_factory=dict)
    precomputed: str | None = None    # version of the precomputed list used, if any
    rules: FilterContext | None = None   # the hard rules' first read of fresh state
    rerank: RerankTrace | None = None     # what the re-rank did (only when asked for)

    def skip(self, part: str, why: str, outcome: str = SKIPPED) -> None:
        """`part` (a source or a request stage) did not run for this request; `outcome` is the metric's label."""
        if outcome not in SKIP_OUTCOMES:
            raise ValueError(f"unknown skip outcome {outcome!r}: one of {SKIP_OUTCOMES}")
        self.skipped_sources[part] = why
        self.skip_outcomes[part] = outcome

    def failed(self, part: str, exc: BaseException, why: str | None = None) -> None:
        """`part` raised `exc`: skipped, and the request went on without it."""
        self.skip(part, why or f"failed: {exc!r}", FAILED)
