"""Suggestion policies the simulator can run: callables (user index, k) -> ranked user indices.

These are baselines that read the simulator's live state; pymk's own pipeline plugs in through
the same interface (see sim.traffic.Policy).
"""

from __future__ import annotations

import numpy as np

from sim.behaviour import WorldState


class RandomPolicy:
    """Uniformly random other users."""

    name = "random"

    def __init__(self, state: WorldState, seed: int = 0) -> None:
        self.state = state
        self.rng = np.random.default_rng(seed)

    def __call__(self, user: int, k: int) -> list[int]:
        picks = self.rng.choice(self.state.world.num_users, min(k + 1, self.state.world.num_users), replace=False)
        return [int(x) for x in picks if x != user][:k]


def _friends_of_friends(state: WorldState, user: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-hop candidates of `user` (not self, not friends) and their mutual-friend counts."""
    row = state.adj[user]
    counts = (row @ state.adj).tocsr()
    cand, mutual = counts.indices, counts.data
    friends = set(row.indices.tolist())
    keep = np.array([c != user and c not in friends for c in cand.tolist()], dtype=bool)
    return cand[keep] if len(cand) else cand, mutual[keep] if len(cand) else mutual


class _FriendsOfFriendsPolicy:
    """Shared shape: two-hop candidates, a choice among them, random users when there are none."""

    name = "fof"

    def __init__(self, state: WorldState, seed: int = 0) -> None:
        self.state = state
        self.rng = np.random.default_rng(seed)
        self.fallback = RandomPolicy(state, seed + 1)

    def __call__(self, user: int, k: int) -> list[int]:
        cand, mutual = _friends_of_friends(self.state, user)
        if len(cand) == 0:
            return self.fallback(user, k)
        return [int(x) for x in self.pick(cand, mutual, k)]

    def pick(self, cand: np.ndarray, mutual: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError


class RandomFoFPolicy(_FriendsOfFriendsPolicy):
    """Random friends-of-friends (the logging baseline)."""

    name = "random_fof"

    def pick(self, cand: np.ndarray, mutual: np.ndarray, k: int) -> np.ndarray:
        return self.rng.choice(cand, min(k, len(cand)), replace=False)


class MutualFriendsPolicy(_FriendsOfFriendsPolicy):
    """Friends-of-friends ranked by mutual-friend count (ties broken at random)."""

    name = "mutual_friends"

    def pick(self, cand: np.ndarray, mutual: np.ndarray, k: int) -> np.ndarray:
        return cand[np.lexsort((self.rng.random(len(cand)), -mutual))[:k]]


POLICIES = {p.name: p for p in (RandomPolicy, RandomFoFPolicy, MutualFriendsPolicy)}
