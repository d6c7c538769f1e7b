"""Train/test splits of ties by time, shared by the evaluation harness and model training."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)
# a quantile cut further than this from its share means many ties share a time (days, years): the
# quantile fell inside one run of equal times, and the cut moves to the time the ties allow that
# comes closest (when one comes closer: a small graph's quantile may just fall between two ties)
COARSE_OFF = 0.01


def time_boundaries(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every cut that times can make: each distinct time after the earliest, and the share of `ts`
    strictly before it (a cut at a time puts the ties of that very time after it)."""
    values, counts = np.unique(ts, return_counts=True)
    return values[1:], np.cumsum(counts)[:-1] / ts.size


def time_split_mask(ts: np.ndarray, train_share: float, seed: int = 0) -> tuple[np.ndarray, float | None]:
    """Boolean mask of training ties: those formed before the `train_share` time quantile.

    Ties of unknown time (NaN) train. Where many ties share a time (times in days or years), or many
    have none, the cut is the tie time whose share of earlier ties (unknown ones included) comes
    closest to `train_share`. When times cannot split the ties near the asked share (no times, or a
    constant column such as SNAP's weight 1 read as a time), a seeded random holdout is used instead
    and the cut is None.
    """
    timed = ~np.isnan(ts)
    if timed.sum() >= 2:
        cut = float(np.quantile(ts[timed], train_share))
        train = ~timed | (ts < cut)
        if abs(train.mean() - train_share) > COARSE_OFF:
            off = train.mean()
            values, timed_share = time_boundaries(ts[timed])
            shares = ((~timed).sum() + timed_share * timed.sum()) / ts.size
            best = int(np.argmin(np.abs(shares - train_share))) if values.size else -1
            if best >= 0 and abs(shares[best] - train_share) < abs(train.mean() - train_share) - 1e-12:
                cut = float(values[best])
                train = ~timed | (ts < cut)
                log.info("the tie-time quantile put %.1f%% of ties before it (ties share times, or have none): "
                         "cut instead at %s, which puts %.1f%% before it", 100 * off, f"{cut:.0f}", 100 * train.mean())
        if abs(train.mean() - train_share) <= 0.5 * min(train_share, 1 - train_share):
            return train, cut
        # one value for every timed tie (SNAP's weight 1 read as a time) says nothing of time: the holdout is
        # the expected reading, not news; times that vary and still cannot split are worth a warning
        level = logging.INFO if np.ptp(ts[timed]) == 0 else logging.WARNING
        log.log(level, "tie times do not split near %.0f%% (got %.0f%%): using a random holdout",
                100 * train_share, 100 * train.mean())
    return np.random.default_rng(seed).random(ts.size) < train_share, None
