"""A vectorized CSR neighbour sampler (pyg-lib is not on PyPI), for graphs too big for full batch.

`sample_blocks` takes seed nodes and per-layer fanouts and returns the nodes involved and, per
layer, an edge_index over local ids (source -> target) that only contains true neighbours.
"""

from __future__ import annotations

import numpy as np
import torch


def sample_neighbors(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, fanout: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to `fanout` neighbours per node: (targets, sources).

    A node with at most `fanout` neighbours gets all of them (so a large enough fanout reproduces
    full-batch aggregation exactly); above that, `fanout` are drawn with replacement.
    """
    deg = indptr[nodes + 1] - indptr[nodes]
    has = deg > 0
    nodes, deg = nodes[has], deg[has]
    picks = (rng.random((nodes.size, fanout)) * deg[:, None]).astype(np.int64)
    picks = np.where(deg[:, None] <= fanout, np.arange(fanout)[None, :], picks)
    take = np.minimum(deg, fanout)
    mask = np.arange(fanout)[None, :] < take[:, None]
    src = indices[(indptr[nodes][:, None] + picks)[mask]]
    dst = np.repeat(nodes, take)
    return dst, src.astype(np.int64)


def sample_blocks(indptr: np.ndarray, indices: np.ndarray, seeds: np.ndarray, fanouts: list[int],
                  rng: np.random.Generator) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Nodes (global ids, seeds first) and one edge_index per layer, outermost layer first."""
    frontier = np.unique(seeds)
    layers = []
    all_nodes = [frontier]
    for fanout in fanouts:
        dst, src = sample_neighbors(indptr, indices, frontier, fanout, rng)
        layers.append((src, dst))
        # The next (inner) layer must also compute this layer's targets: their own vectors feed
        # the outer layer (self term), not only their sampled neighbours'.
        frontier = np.union1d(frontier, src)
        all_nodes.append(frontier)
    nodes, first = np.unique(np.concatenate(all_nodes), return_index=True)
    nodes = nodes[np.argsort(first, kind="stable")]  # seeds first, then by discovery
    order = np.argsort(nodes, kind="stable")
    sorted_nodes = nodes[order]

    def local(ids: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(sorted_nodes, ids)]

    blocks = [torch.from_numpy(np.stack([local(s), local(d)])) for s, d in reversed(layers)]
    return nodes, blocks
