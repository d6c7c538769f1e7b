"""Popularity sources: the most connected people overall, and the people making the most new ties lately.

Both rank every user once per snapshot, so a request only skips the viewer and their friends.
"Lately" is the window, before the snapshot's data time, in which its latest 5% of ties formed
(the graph's own tempo); a graph without tie times has no trending list.
"""

from __future__ import annotations

import numpy as np

from candidates.base import Proposals, to_candidates
from candidates.types import Candidate
from graph.records import UserRecord
from graph.snapshot import Snapshot, data_time, recent_window_start
from graph.snapshot.csr import is_neighbour, rank_in_group, scrambled


def top_excluding_block(order: np.ndarray, snap: Snapshot, degree: np.ndarray, users: np.ndarray, k: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """For each of `users`, the first k of a global `order` of users that are neither that user nor one
    of its friends, as (owner: position in `users`, candidate) rows grouped by owner."""
    users = np.asarray(users, dtype=np.int64)
    head = order[: k + int(degree[users].max(initial=0)) + 1]
    owner = np.repeat(np.arange(users.size), head.size)
    cand = np.tile(head, users.size)
    rows = np.flatnonzero((cand != users[owner]) & ~is_neighbour(snap.indptr, snap.indices, users, owner, cand))
    rows = rows[rank_in_group(owner[rows]) < k]
    return owner[rows], cand[rows]


def top_excluding(order: np.ndarray, snap: Snapshot, degree: np.ndarray, user: int, k: int) -> np.ndarray:
    """The first k of a global `order` of users that are neither `user` nor one of its friends."""
    return top_excluding_block(order, snap, degree, np.array([user]), k)[1]


class _RankedUsers:
    name = ""
    description = ""
    inline = True   # in-memory, bounded work: runs in the request's own thread (candidates/budget.py)

    def __init__(self, snap: Snapshot, score: np.ndarray, unit: str) -> None:
        self.snap = snap
        self.degree = snap.degree  # computed once: Snapshot.degree is a fresh np.diff each call
        self.unit = unit
        keep = np.flatnonzero(score > 0)
        # equal counts in a fixed pseudo-random order, not by index: ids often follow sign-up order, and the
        # oldest accounts would take every tie (counts of friends or new ties tie by the thousand)
        self.order = keep[np.lexsort((scrambled(keep), -score[keep]))]
        self.score = score

    def propose(self, users: np.ndarray, k: int) -> Proposals:
        """Each viewer's first k of the global order that are neither the viewer nor a friend."""
        return self._proposals(*top_excluding_block(self.order, self.snap, self.degree, users, k))

    def _proposals(self, owner: np.ndarray, cand: np.ndarray) -> Proposals:
        score = self.score[cand]
        return Proposals(owner, cand, score, lambda r: [{self.unit: int(x)} for x in score[r].tolist()])

    def generate(self, user: int, k: int) -> list[Candidate]:
        return to_candidates(self.name, self.snap, self.propose(np.array([user]), k))

    def generate_for_profile(self, profile: UserRecord, friends: np.ndarray, k: int) -> list[Candidate]:
        """For a viewer the snapshot does not hold: the first k of the order that are not `friends`."""
        head = self.order[:k + len(friends)]
        cand = head[~np.isin(head, friends)][:k]
        return to_candidates(self.name, self.snap, self._proposals(np.zeros(cand.size, np.int64), cand))


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
