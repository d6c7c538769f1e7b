"""Train/test splits of ties by time, shared by the evaluation harness and model training."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def time_split_mask(ts: np.ndarray, train_share: float, seed: int = 0) -> tuple[np.ndarray, float | None]:
    """Boolean mask of training ties: those formed before the `train_share` time quantile.

    Ties of unknown time (NaN) train. When times cannot split the ties near the asked share (no
    times, or a constant column such as SNAP's weight 1 read as a time), a seeded random holdout
    is used instead and the cut is None.
    """
    timed = ~np.isnan(ts)
    if timed.sum() >= 2:
        cut = float(np.quantile(ts[timed], train_share))
        train = ~timed | (ts < cut)
        if abs(train.mean() - train_share) <= 0.5 * min(train_share, 1 - train_share):
            return train, cut
        log.warning("tie times do not split near %.0f%% (got %.0f%%): using a random holdout",
                    100 * train_share, 100 * train.mean())
    return np.random.default_rng(seed).random(ts.size) < train_share, None
