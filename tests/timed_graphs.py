"""Small timed graphs the history tests share: random ties with times, interaction tables."""

from __future__ import annotations

import numpy as np


def random_timed_graph(n: int = 60, m: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    return [str(x) for x in src[keep]], [str(x) for x in dst[keep]], rng.random(keep.sum()) * 100


def said(snap, rows):
    """An interaction event table for (src, dst, ts) rows of external ids."""
    from graph.snapshot import interaction_table

    return interaction_table(snap, [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows]))
