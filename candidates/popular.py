"""Popularity sources: the most connected people overall, and the people making the most new ties lately.

Both rank every user once per snapshot, so a request only skips the viewer and their friends.
"Lately" is the window, before the snapshot's data time, in which its latest 5% of ties formed
(the graph's own tempo); a graph without tie times has no trending list.
"""

from __future__ import annotations

import numpy as np

from candidates.types import Candidate
from graph.snapshot import Snapshot, data_time, recent_window_start


def top_excluding(order: np.ndarray, snap: Snapshot, degree: np.ndarray, user: int, k: int) -> np.ndarray:
    """The first k of a global `order` of users that are neither `user` nor one of its friends."""
    head = order[: k + int(degree[user]) + 1]
    return head[(head != user) & ~np.isin(head, snap.neighbors(user))][:k]


class _RankedUsers:
    name = ""
    description = ""

    def __init__(self, snap: Snapshot, score: np.ndarray, unit: str) -> None:
        self.snap = snap
        self.degree = snap.degree  # computed once: Snapshot.degree is a fresh np.diff each call
        self.unit = unit
        keep = np.flatnonzero(score > 0)
        self.order = keep[np.lexsort((keep, -score[keep]))]
        self.score = score

    def generate(self, user: int, k: int) -> list[Candidate]:
        head = top_excluding(self.order, self.snap, self.degree, user, k)
        return [Candidate.of(self.snap.external_id(c), c, self.name, float(self.score[c]),
                             {self.unit: int(self.score[c])}) for c in head.tolist()]


class PopularSource(_RankedUsers):
    """Candidate source: the most connected users."""

    name = "popular"
    description = "people with the most friends"

    def __init__(self, snap: Snapshot) -> None:
        super().__init__(snap, snap.degree.astype(np.float64), "friends")


class TrendingSource(_RankedUsers):
    """Candidate source: users who made the most of the graph's latest `share` of new ties."""

    name = "trending"
    description = "people making many new connections lately"

    def __init__(self, snap: Snapshot, share: float = 0.05) -> None:
        at = data_time(snap)
        start = recent_window_start(snap.since, at, share) if at is not None else np.inf
        super().__init__(snap, snap.new_ties_since(start), "new_ties")
