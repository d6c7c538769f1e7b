"""Vectorized random-walk steps on a CSR adjacency (numpy only)."""

from __future__ import annotations

import numpy as np


def random_neighbor(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
    """One uniformly random neighbour per node (-1 for isolated nodes)."""
    deg = indptr[nodes + 1] - indptr[nodes]
    out = np.full(nodes.shape, -1, dtype=np.int64)
    ok = deg > 0
    out[ok] = indices[indptr[nodes[ok]] + (rng.random(int(ok.sum())) * deg[ok]).astype(np.int64)]
    return out


def two_step_walk(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
    """End of a two-step random walk from each node (-1 where the walk gets stuck)."""
    mid = random_neighbor(indptr, indices, nodes, rng)
    out = np.full(nodes.shape, -1, dtype=np.int64)
    ok = mid >= 0
    out[ok] = random_neighbor(indptr, indices, mid[ok], rng)
    return out
