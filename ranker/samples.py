"""Samples of the history examples: the pointwise contenders' training sample, and a probe of groups."""

from __future__ import annotations

import numpy as np

from ranker.history import ConnectExamples


def downsample(ex: ConnectExamples, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Every positive, and negatives drawn uniformly to about `ratio` per positive."""
    pos = ex.y > 0
    keep = pos | (rng.random(ex.y.size) < min(1.0, ratio * max(pos.sum(), 1) / max((~pos).sum(), 1)))
    return ex.x[keep], ex.y[keep]


def probe_groups(ex: ConnectExamples, groups: int = 400) -> ConnectExamples:
    """Evenly spaced groups of the training examples, to score a learning curve's training side cheaply."""
    n = ex.relevant.size
    mask = np.zeros(n, dtype=bool)
    mask[np.linspace(0, n - 1, min(groups, n)).astype(np.int64)] = True
    return ex.subset(mask)
