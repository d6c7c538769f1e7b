"""Personalized PageRank (random walk with restart) by forward push, and global PageRank.

Forward push (Andersen, Chung, Lang 2006), pushed in rounds (candidates/push.py): every node whose
residual r(v) >= eps * deg(v) pushes at once. On exit every residual is below eps * deg(v), and on an
undirected graph this bounds the error of the estimate p for every node v:

    0 <= ppr(v) - p(v) <= eps * deg(v)

(ppr_u(v) / deg(v) = ppr_v(u) / deg(u) by reversibility, so sum_u r(u) ppr_u(v) <= eps deg(v)).
The walk restarts at the viewer with probability `alpha` at each step.

A fixed eps can stop the push before it gets past the viewer's friends: a node two steps away gets an
estimate only if it pushes, and what reaches it, about (1 - alpha)^2 * common friends / (deg(viewer)
deg(friend)), is below eps * its degree wherever degrees run in the hundreds (on ego-Facebook a fifth
of the viewers had no estimate beyond their friends at eps = 1e-4; on a graph of mean degree 180,
none had). So each viewer's push is repeated with eps / 4, up to DEEPEN times, while fewer than
`reach` users beyond its friends have an estimate and the walk still holds mass it did not push. The
bound above holds with the smaller eps, so eps * deg(v) still bounds the error. Each viewer is
deepened on its own, whatever block it comes in.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from candidates.base import Proposals, to_candidates
from candidates.push import push_one
from candidates.types import Candidate
from graph.snapshot import Snapshot
from graph.snapshot.csr import group_starts, is_neighbour, pair_ties, rank_in_group

log = logging.getLogger(__name__)
REACH = 20   # users beyond the viewer's friends a push should give an estimate (a served list)
DEEPEN = 4   # at most this many retries, each with eps / 4
PUSH_MEMO = 16   # single-viewer pushes a source keeps: one per request in flight is reused (server threads: 2)


def forward_push_block(indptr: np.ndarray, indices: np.ndarray, degree: np.ndarray, sources: np.ndarray,
                       alpha: float = 0.15, eps: float = 1e-4, max_rounds: int = 200, reach: int = REACH
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse PPR estimates from each of `sources`: (owner, node, value) sorted by (owner, node), owner
    being the source's position in `sources`. Each source is pushed alone (candidates/push.py), so its
    values never depend on the block it came in; `reach` = 0 pushes once at eps (no deepening)."""
    sources = np.asarray(sources, dtype=np.int64)
    parts = [_deepened(indptr, indices, degree, s, alpha, eps, max_rounds, reach) for s in sources.tolist()]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    owner = np.repeat(np.arange(len(parts)), [nodes.size for nodes, _ in parts])
    return owner, np.concatenate([nodes for nodes, _ in parts]), np.concatenate([vals for _, vals in parts])


def _deepened(indptr: np.ndarray, indices: np.ndarray, degree: np.ndarray, s: int, alpha: float, eps: float,
              max_rounds: int, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """One viewer's push, repeated with eps / 4 while it reaches too few users past the friends."""
    for step in range(DEEPEN + 1):
        nodes, values, pending = push_one(indptr, indices, degree, s, alpha, eps / 4**step, max_rounds)
        if pending == 0 or step == DEEPEN or reach <= 0:
            break
        friends = indices[indptr[s]:indptr[s + 1]]   # s is a user: push_one raised otherwise
        beyond = nodes.size - 1 - np.isin(nodes, friends, assume_unique=True).sum()
        if beyond >= reach:
            break
    return nodes, values


def forward_push(indptr: np.ndarray, indices: np.ndarray, degree: np.ndarray, source: int,
                 alpha: float = 0.15, eps: float = 1e-4, max_rounds: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Sparse PPR estimate from `source`: (node indices, values), with the error bound above."""
    _, nodes, values = forward_push_block(indptr, indices, degree, np.array([source]), alpha, eps, max_rounds)
    return nodes, values


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
    if n == 0:   # an empty graph (a new deployment's first snapshot)
        return np.zeros(0)
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
    inline = True   # in-memory, bounded work: runs in the request's own thread (candidates/budget.py)

    def __init__(self, snap: Snapshot, alpha: float = 0.15, eps: float = 1e-4) -> None:
        self.snap = snap
        self.degree = snap.degree
        self.alpha = alpha
        self.eps = eps
        # A request pushes its viewer's walk twice (this source's proposals, then the ranking
        # features): the last few single-viewer pushes are kept (read-only arrays).
        self._push_one = lru_cache(maxsize=PUSH_MEMO)(self._push_one_uncached)

    def push(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        users = np.asarray(users, dtype=np.int64)
        if users.size == 1:
            return self._push_one(int(users[0]))
        return forward_push_block(self.snap.indptr, self.snap.indices, self.degree, users, self.alpha, self.eps)

    def _push_one_uncached(self, user: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = forward_push_block(self.snap.indptr, self.snap.indices, self.degree, np.array([user]), self.alpha,
                                 self.eps)
        for a in out:
            a.flags.writeable = False
        return out

    def propose(self, users: np.ndarray, k: int,
                push: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Proposals:
        """`push`: this source's `push(users)` when the caller already has it."""
        users = np.asarray(users, dtype=np.int64)
        owner, nodes, values = push if push is not None else self.push(users)
        return top_excluding_friends(self.snap, users, owner, nodes, values, k, self._proof(nodes, values))

    def _proof(self, nodes: np.ndarray, values: np.ndarray):
        return lambda rows: [{"ppr": v, "error_bound": self.eps * float(d)}
                             for v, d in zip(values[rows].tolist(), self.degree[nodes[rows]].tolist(), strict=True)]

    def generate(self, user: int, k: int) -> list[Candidate]:
        return to_candidates(self.name, self.snap, self.propose(np.array([user]), k))


def top_excluding_friends(snap: Snapshot, users: np.ndarray, owner: np.ndarray, nodes: np.ndarray,
                          values: np.ndarray, k: int, proof) -> Proposals:
    """Each owner's top k nodes by value (equal values in a pseudo-random order of the pair), leaving out
    the viewer and its friends; `proof` takes rows of (nodes, values).

    Only the rows that can make an owner's top k are sorted: at most deg + 1 of its rows are left out, so
    they are among its first k + deg + 1 by value (a push from beside a hub reaches most of the graph: on
    a 1M-user graph whose hub is tied to 880,000 users, sorting every row took 19 ms a viewer)."""
    degree = snap.indptr[users + 1] - snap.indptr[users]   # the viewers' only (snap.degree is every user's)
    rows = _contenders(owner, values, k + degree + 1)
    rows = rows[(nodes[rows] != users[owner[rows]]) & ~is_neighbour(snap.indptr, snap.indices, users, owner[rows],
                                                                      nodes[rows])]
    # equal values (users the push cannot tell apart: the friends of one friend) in a pseudo-random order
    # of the (viewer, user) pair, not by index (ids often follow sign-up order)
    ties = pair_ties(users[owner[rows]], nodes[rows], snap.num_users)
    rows = rows[np.lexsort((ties, -values[rows], owner[rows]))]
    rows = rows[rank_in_group(owner[rows]) < k]
    return Proposals(owner[rows], nodes[rows], values[rows], lambda r: proof(rows[r]))


def _contenders(owner: np.ndarray, values: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The rows (in no order) that can be among their owner's first `limit[owner]` by value: all of an owner's
    rows when it has no more, else those at or above its limit-th largest value, ties included."""
    if not np.any(np.bincount(owner, minlength=limit.size) > limit):   # most viewers: every row
        return np.arange(owner.size)
    order = None if np.all(owner[1:] >= owner[:-1]) else np.argsort(owner, kind="stable")
    grouped = owner if order is None else owner[order]
    vals = values if order is None else values[order]
    starts = group_starts(grouped)
    ends = np.append(starts[1:], grouped.size)
    cap = limit[grouped[starts]]
    keep = np.ones(grouped.size, dtype=bool)
    for lo, hi, n in zip(starts.tolist(), ends.tolist(), cap.tolist(), strict=True):
        if hi - lo > n:
            segment = vals[lo:hi]
            keep[lo:hi] = segment >= np.partition(segment, hi - lo - n)[hi - lo - n]
    rows = np.flatnonzero(keep)
    return rows if order is None else order[rows]
