"""Cold start: suggestions for users with few or no friends, from their profile.

Candidates come from the viewer's groups (same school, employer, city), the most central members
of each group first (global PageRank), scored by how many attributes they share, how central they
are and how close they live. The friends of the few friends a new user has come from the
friends-of-friends source, which runs for every user.
"""

from __future__ import annotations

import numpy as np

from candidates.base import Proposals, to_candidates
from candidates.ppr import global_pagerank
from candidates.types import Candidate
from graph.geo import haversine_km
from graph.records import UserRecord
from graph.snapshot import Snapshot
from graph.snapshot.csr import scrambled

WEIGHTS = {"school": 1.0, "employer": 1.0, "city": 0.6}


class ColdStartSource:
    """Profile-similar, central people for viewers with fewer than `min_friends` friends."""

    name = "coldstart"
    description = "people from your school, workplace or city who are well connected there"
    inline = True   # in-memory, bounded work: runs in the request's own thread (candidates/budget.py)

    def __init__(self, snap: Snapshot, min_friends: int = 3, per_group: int = 200,
                 pagerank: np.ndarray | None = None) -> None:
        self.snap = snap
        self.min_friends = min_friends
        self.per_group = per_group
        self.degree = snap.degree
        pr = global_pagerank(snap) if pagerank is None else pagerank
        self.popularity = np.log1p(pr * snap.num_users)
        self.groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # equal popularity (users without friends) in a fixed pseudo-random order, not by index: ids often
        # follow sign-up order, and a group's first `per_group` would be its oldest accounts
        ties = scrambled(np.arange(snap.num_users))
        for col in WEIGHTS:
            codes = snap.categorical.get(col)
            if codes is None or not len(snap.vocab.get(col, [])):
                continue
            order = np.lexsort((ties, -self.popularity, codes))
            starts = np.searchsorted(codes[order], np.arange(len(snap.vocab[col]) + 1))
            self.groups[col] = (order, starts)
        self._lookup: dict[str, dict[str, int]] = {}   # value -> code, built on first use (generate_for_profile)

    def _top(self, user: int, k: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray] | None:
        """The viewer's top k: candidates, scores, which attributes each shares, distances (NaN: unknown)."""
        if self.degree[user] >= self.min_friends:
            return None
        codes = {col: int(self.snap.categorical[col][user]) for col in self.groups}
        lat, lon = self.snap.numeric["lat"][user], self.snap.numeric["lon"][user]
        return self._top_of(codes, lat, lon, np.append(self.snap.neighbors(user), user), k)

    def _top_of(self, codes: dict[str, int], lat: float, lon: float, exclude: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray] | None:
        """The top k for a profile (attribute codes, -1: none; location), `exclude` left out."""
        pools = [order[starts[code]:min(starts[code + 1], starts[code] + self.per_group)]
                 for col, (order, starts) in self.groups.items() if (code := codes.get(col, -1)) >= 0]
        if not pools:
            return None
        cand = np.unique(np.concatenate(pools))
        cand = cand[~np.isin(cand, exclude)]
        if not cand.size:
            return None
        shared = {col: (self.snap.categorical[col][cand] == code) & (code >= 0)   # a missing value is not shared
                  for col in self.groups for code in [codes.get(col, -1)]}
        score = sum(WEIGHTS[col] * m for col, m in shared.items()) + 0.3 * self.popularity[cand]
        dist = haversine_km(lat, lon, self.snap.numeric["lat"][cand], self.snap.numeric["lon"][cand])
        score = score - 0.05 * np.nan_to_num(np.log1p(dist), nan=0.0)
        top = np.lexsort((scrambled(cand), -score))[:k]
        return cand[top], score[top], {col: m[top] for col, m in shared.items()}, dist[top]

    def _proposals(self, cand: np.ndarray, score: np.ndarray, shared: dict[str, np.ndarray], dist: np.ndarray
                   ) -> Proposals:
        """One viewer's top (as `_top_of` returns it) as proposals; a row's proof is built when asked for."""
        def proof(rows: np.ndarray) -> list[dict]:
            return [{"shared": [col for col in self.groups if shared[col][r]],
                     "distance_km": None if np.isnan(dist[r]) else round(float(dist[r]), 1)} for r in rows.tolist()]

        return Proposals(np.zeros(cand.size, np.int64), cand.astype(np.int64), score.astype(np.float64), proof)

    def generate_for_profile(self, profile: UserRecord, friends: np.ndarray, k: int) -> list[Candidate]:
        """For a viewer the snapshot does not hold (signed up since): its profile from the graph store,
        `friends` its friends' snapshot indices; nothing once it has `min_friends` of them."""
        if len(friends) >= self.min_friends:
            return []
        codes = {col: self._code(col, getattr(profile, col)) for col in self.groups}
        lat, lon = (np.nan if v is None else float(v) for v in (profile.lat, profile.lon))
        got = self._top_of(codes, lat, lon, np.asarray(friends, dtype=np.int64), k)
        return [] if got is None else to_candidates(self.name, self.snap, self._proposals(*got))

    def _code(self, col: str, value: str | None) -> int:
        if col not in self._lookup:
            self._lookup[col] = {v: i for i, v in enumerate(self.snap.vocab[col])}
        return -1 if value is None else self._lookup[col].get(value, -1)

    def propose(self, users: np.ndarray, k: int) -> Proposals:
        """Proposals as arrays; the proof of a row is built only when asked for (most are never shown)."""
        parts = []
        for i, user in enumerate(np.asarray(users, dtype=np.int64).tolist()):
            got = self._top(user, k)
            if got is not None:
                parts.append((i, self._proposals(*got)))
        return Proposals.concat(parts)

    def generate(self, user: int, k: int) -> list[Candidate]:
        return to_candidates(self.name, self.snap, self.propose(np.array([user]), k))
