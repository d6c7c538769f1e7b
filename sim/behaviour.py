"""The hidden behaviour model: who sends a request when shown a suggestion, and who accepts.

Send and accept are deliberately different functions. Viewers send more to people they share
friends, school, employer and city with, who live near, and who are popular (familiar faces),
less to low positions and to faces shown many times before. Candidates accept when the viewer is
part of *their* circle (a large share of the candidate's friends are mutual), and accept less
when they are popular or already have many pending requests. A model that optimizes sends alone
therefore over-targets popular users and forms fewer connections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from graph.geo import haversine_km
from sim.world import World


@dataclass(frozen=True)
class BehaviourParams:
    send_bias: float = -3.4
    send_mutual: float = 0.9          # per log(1 + mutual friends)
    send_school: float = 0.6
    send_employer: float = 0.5
    send_city: float = 0.4
    send_distance: float = -0.15      # per log(1 + km)
    send_popularity: float = 0.35     # per log(1 + candidate degree): popular faces draw clicks
    position_decay: float = 0.7       # examine probability (1 + position) ** -decay
    fatigue: float = 0.7              # multiplier per earlier impression of the same pair
    accept_bias: float = 0.6
    accept_circle: float = 3.0        # per sqrt(mutual / candidate degree)
    accept_pending: float = -0.45     # per log(1 + candidate's pending requests)
    accept_popularity: float = -0.55  # per log(1 + candidate degree / 20)
    accept_age: float = 0.4
    accept_language: float = 0.5
    decline_share: float = 0.5        # of the requests not accepted, the share declined (rest ignored)
    dismiss_rate: float = 0.03        # of impressions without a send


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class WorldState:
    """The world's graph as it evolves during a simulation (ties added, requests pending)."""

    def __init__(self, world: World, adjacency: sp.csr_matrix | None = None) -> None:
        self.world = world
        self.adj = (world.adjacency() if adjacency is None else adjacency).tocsr()
        self.pending = np.zeros(world.num_users, dtype=np.int32)
        self.impressions: dict[int, int] = {}
        self.requested: set[int] = set()  # pair keys v * n + c with a request either way

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.adj.indptr)

    def key(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a.astype(np.int64) * self.world.num_users + b

    def mutual_counts(self, viewers: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if len(viewers) == 0:
            return np.zeros(0)
        return np.asarray(self.adj[viewers].multiply(self.adj[candidates]).sum(axis=1)).ravel()

    def are_friends(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(a) == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(self.adj[a, b]).ravel() > 0

    def add_friendships(self, a: np.ndarray, b: np.ndarray) -> None:
        if len(a) == 0:
            return
        n = self.world.num_users
        new = sp.csr_matrix((np.ones(2 * len(a), np.float32), (np.concatenate([a, b]), np.concatenate([b, a]))),
                            shape=(n, n))
        self.adj = ((self.adj + new) > 0).astype(np.float32).tocsr()


class HiddenBehaviour:
    """Draws send and accept decisions for shown suggestions."""

    def __init__(self, params: BehaviourParams | None = None) -> None:
        self.params = params or BehaviourParams()

    def p_send(self, state: WorldState, viewers: np.ndarray, candidates: np.ndarray, positions: np.ndarray
               ) -> np.ndarray:
        p, w = self.params, state.world
        mutual = state.mutual_counts(viewers, candidates)
        dist = haversine_km(w.lat[viewers], w.lon[viewers], w.lat[candidates], w.lon[candidates])
        logit = (p.send_bias + p.send_mutual * np.log1p(mutual)
                 + p.send_school * (w.school[viewers] == w.school[candidates])
                 + p.send_employer * (w.employer[viewers] == w.employer[candidates])
                 + p.send_city * (w.city[viewers] == w.city[candidates])
                 + p.send_distance * np.log1p(dist)
                 + p.send_popularity * np.log1p(state.degree[candidates]))
        seen = np.array([state.impressions.get(int(k), 0) for k in state.key(viewers, candidates)])
        examine = (1.0 + positions) ** -p.position_decay
        return _sigmoid(logit) * examine * p.fatigue ** seen

    def p_accept(self, state: WorldState, viewers: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Probability that `candidates` accept a request sent by `viewers`."""
        p, w = self.params, state.world
        mutual = state.mutual_counts(viewers, candidates)
        deg_c = state.degree[candidates]
        logit = (p.accept_bias + p.accept_circle * np.sqrt(mutual / np.maximum(deg_c, 1))
                 + p.accept_pending * np.log1p(state.pending[candidates])
                 + p.accept_popularity * np.log1p(deg_c / 20.0)
                 + p.accept_age * (w.age_group[viewers] == w.age_group[candidates])
                 + p.accept_language * (w.language[viewers] == w.language[candidates]) - p.accept_language)
        return _sigmoid(logit)
