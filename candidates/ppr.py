"""Personalized PageRank (random walk with restart) by forward push, and global PageRank.

Forward push (Andersen, Chung, Lang 2006), pushed in vectorized rounds: every node whose residual
r(v) >= eps * deg(v) pushes at once. On exit every residual is below eps * deg(v), and on an
undirected graph this bounds the error of the estimate p for every node v:

    0 <= ppr(v) - p(v) <= eps * deg(v)

(ppr_u(v) / deg(v) = ppr_v(u) / deg(u) by reversibility, so sum_u r(u) ppr_u(v) <= eps deg(v)).
The walk restarts at the viewer with probability `alpha` at each step.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import row_positions

log = logging.getLogger(__name__)


def forward_push(indptr: np.ndarray, indices: np.ndarray, degree: np.ndarray, source: int,
                 alpha: float = 0.15, eps: float = 1e-4, max_rounds: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Sparse PPR estimate from `source`: (node indices, values), with the error bound above."""
    if degree[source] == 0:
        return np.array([source]), np.array([1.0])
    p_nodes: list[np.ndarray] = []
    p_vals: list[np.ndarray] = []
    r_nodes = np.array([source], dtype=np.int64)
    r_vals = np.array([1.0])
    for _ in range(max_rounds):
        active = r_vals >= eps * degree[r_nodes]
        if not active.any():
            break
        push_nodes, push_vals = r_nodes[active], r_vals[active]
        p_nodes.append(push_nodes)
        p_vals.append(alpha * push_vals)
        share = (1 - alpha) * push_vals / degree[push_nodes]
        offsets, _ = row_positions(indptr, push_nodes)
        lens = degree[push_nodes]
        targets = np.concatenate([indices[offsets], r_nodes[~active]])
        mass = np.concatenate([np.repeat(share, lens), r_vals[~active]])
        r_nodes, inv = np.unique(targets, return_inverse=True)
        r_vals = np.bincount(inv, weights=mass, minlength=r_nodes.size)
    nodes, inv = np.unique(np.concatenate(p_nodes), return_inverse=True)
    return nodes, np.bincount(inv, weights=np.concatenate(p_vals), minlength=nodes.size)


def ppr_dense(adjacency: np.ndarray, source: int, alpha: float = 0.15) -> np.ndarray:
    """Exact PPR by a dense linear solve (reference for tests; no dangling nodes allowed)."""
    deg = adjacency.sum(axis=1)
    transition = adjacency / deg[:, None]
    n = adjacency.shape[0]
    e = np.zeros(n)
    e[source] = 1.0
    return np.linalg.solve(np.eye(n) - (1 - alpha) * transition.T, alpha * e)


def global_pagerank(snap: Snapshot, damping: float = 0.85, tol: float = 1e-10, max_iter: int = 200
                    ) -> np.ndarray:
    """PageRank by sparse power iteration; dangling nodes spread their mass uniformly."""
    n = snap.num_users
    deg = snap.degree.astype(np.float64)
    adj = sp.csr_matrix((np.ones(len(snap.indices)), snap.indices, snap.indptr), shape=(n, n))
    inv_deg = np.divide(1.0, deg, out=np.zeros(n), where=deg > 0)
    rank = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        dangling = rank[deg == 0].sum()
        new = damping * (adj.T @ (rank * inv_deg)) + (damping * dangling + 1 - damping) / n
        if np.abs(new - rank).sum() < tol:
            return new
        rank = new
    log.warning("PageRank did not converge in %d iterations", max_iter)
    return rank


class PersonalizedPageRankSource:
    """Candidate source: where random walks that restart at the viewer spend their time."""

    name = "ppr"
    description = "people your network's random walks keep reaching (personalized PageRank)"

    def __init__(self, snap: Snapshot, alpha: float = 0.15, eps: float = 1e-4) -> None:
        self.snap = snap
        self.degree = snap.degree
        self.alpha = alpha
        self.eps = eps

    def generate(self, user: int, k: int) -> list[Candidate]:
        nodes, values = forward_push(self.snap.indptr, self.snap.indices, self.degree, user, self.alpha, self.eps)
        friends = self.snap.neighbors(user)
        keep = (nodes != user) & ~np.isin(nodes, friends)
        nodes, values = nodes[keep], values[keep]
        top = np.lexsort((nodes, -values))[:k]
        return [Candidate.of(self.snap.external_id(int(c)), int(c), self.name, float(v),
                             {"ppr": float(v), "error_bound": self.eps * float(self.degree[c])})
                for c, v in zip(nodes[top].tolist(), values[top].tolist(), strict=True)]
