"""Training examples from the event log: impressions -> send label, sends -> accept label.

Examples are grouped by (viewer, day); the features of a group are computed as of the start of
that day (before any of its events), so no feature can see the labels' events. Splits are by time (train, validation,
test periods in order); negatives are downsampled in the training period only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from graph.snapshot.format import EVENT_CODE
from pymk.progress import progress_bar
from ranker.features import FEATURE_NAMES, FeatureContext

log = logging.getLogger(__name__)
LABEL_WINDOW = 7 * 86_400.0


@dataclass
class Examples:
    x: np.ndarray          # features
    y: np.ndarray          # label (send for impressions, accept for sends)
    viewer: np.ndarray
    cand: np.ndarray
    ts: np.ndarray
    group: np.ndarray      # (viewer, day) group id, for ranking metrics

    def subset(self, mask: np.ndarray) -> Examples:
        return Examples(self.x[mask], self.y[mask], self.viewer[mask], self.cand[mask], self.ts[mask],
                        self.group[mask])


def _has_later(keys_src: np.ndarray, keys_dst: np.ndarray, keys_ts: np.ndarray, src: np.ndarray,
               dst: np.ndarray, ts: np.ndarray, window: float) -> np.ndarray:
    """Whether an event (src, dst) happens in [ts, ts + window] for each query row."""
    n = int(max(keys_src.max(initial=0), keys_dst.max(initial=0), src.max(initial=0), dst.max(initial=0))) + 1
    keys = keys_src.astype(np.int64) * n + keys_dst
    order = np.lexsort((keys_ts, keys))
    keys, times = keys[order], keys_ts[order]
    q = src.astype(np.int64) * n + dst
    lo = np.searchsorted(keys, q, "left")
    hi = np.searchsorted(keys, q, "right")
    out = np.zeros(q.size, dtype=bool)
    for i in np.flatnonzero(hi > lo):
        t = times[lo[i]:hi[i]]
        out[i] = bool(((t >= ts[i]) & (t <= ts[i] + window)).any())
    return out


def _day_groups(viewer: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each row's (viewer, day) key: the group its features are computed for, and ranking metrics read."""
    return viewer.astype(np.int64) * 1_000_000 + np.floor(ts / 86_400.0).astype(np.int64)


def sample_groups(viewer: np.ndarray, ts: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """A mask of whole (viewer, day) groups drawn at random, as many as fit in `budget` rows (every row when
    they all fit): a bounded, unbiased share of a large log, with every kept list complete for NDCG."""
    if viewer.size <= budget:
        return np.ones(viewer.size, dtype=bool)
    _, inverse, counts = np.unique(_day_groups(viewer, ts), return_inverse=True, return_counts=True)
    order = rng.permutation(counts.size)
    chosen = np.zeros(counts.size, dtype=bool)
    chosen[order[np.cumsum(counts[order]) <= budget]] = True
    return chosen[inverse]


def _featurize(ctx: FeatureContext, viewer: np.ndarray, cand: np.ndarray, ts: np.ndarray, progress: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    day = np.floor(ts / 86_400.0).astype(np.int64)
    order = np.lexsort((ts, day, viewer))
    x = np.zeros((viewer.size, len(FEATURE_NAMES)), dtype=np.float32)
    group = np.zeros(viewer.size, dtype=np.int64)
    keys = _day_groups(viewer, ts)[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [keys.size]])
    for g, (a, b) in enumerate(progress_bar(list(zip(starts, ends, strict=True)), desc="features", enabled=progress)):
        rows = order[a:b]
        t0 = float(day[rows[0]]) * 86_400.0  # as of the start of the group's day: nothing later is visible
        x[rows] = ctx.pair_features(int(viewer[rows[0]]), cand[rows], t0)
        group[rows] = g
    return x, group


def build_examples(ctx: FeatureContext, progress: bool = False, max_rows: int = 0) -> tuple[Examples, Examples]:
    """(impression examples with send labels, send examples with accept labels). With `max_rows` > 0, each
    kind beyond that many rows is cut to whole (viewer, day) groups drawn at random (labels read every
    event first): featurizing costs ~50 us and 232 bytes a row, so an impression log of 100M would not fit."""
    ev = ctx.snap.events
    t = ev["type"]
    imp, send, acc = (t == EVENT_CODE[x] for x in ("impression", "send", "accept"))
    iv, ic, its = ev["src"][imp], ev["dst"][imp], ev["ts"][imp]
    sent = _has_later(ev["src"][send], ev["dst"][send], ev["ts"][send], iv, ic, its, LABEL_WINDOW)
    sv, sc, sts = ev["src"][send], ev["dst"][send], ev["ts"][send]
    # an accept is answered by the candidate: (src = candidate, dst = viewer)
    accepted = _has_later(ev["src"][acc], ev["dst"][acc], ev["ts"][acc], sc, sv, sts, 10 * LABEL_WINDOW)
    if max_rows > 0 and max(iv.size, sv.size) > max_rows:
        rng = np.random.default_rng(0)
        keep = sample_groups(iv, its, max_rows, rng)
        log.info("impressions: %d of %d sampled by (viewer, day) groups (at most %d rows)", keep.sum(), iv.size,
                 max_rows)
        iv, ic, its, sent = iv[keep], ic[keep], its[keep], sent[keep]
        keep = sample_groups(sv, sts, max_rows, rng)
        sv, sc, sts, accepted = sv[keep], sc[keep], sts[keep], accepted[keep]
    x_i, g_i = _featurize(ctx, iv, ic, its, progress)
    x_s, g_s = _featurize(ctx, sv, sc, sts, progress)
    log.info("%d impressions (%.2f%% sent), %d sends (%.1f%% accepted)", iv.size, 100 * sent.mean(),
             sv.size, 100 * accepted.mean() if accepted.size else 0.0)
    return (Examples(x_i, sent.astype(np.float32), iv, ic, its, g_i),
            Examples(x_s, accepted.astype(np.float32), sv, sc, sts, g_s))


def time_periods(ts: np.ndarray, cuts: tuple[float, float] = (0.7, 0.85)) -> tuple[float, float]:
    """Times splitting events into train / validation / test periods (in that order)."""
    return float(np.quantile(ts, cuts[0])), float(np.quantile(ts, cuts[1]))


def downsample_negatives(ex: Examples, ratio: float, rng: np.random.Generator) -> Examples:
    """Keep every positive and about `ratio` negatives per positive (training period only)."""
    pos = ex.y > 0
    keep_p = min(1.0, ratio * max(pos.sum(), 1) / max((~pos).sum(), 1))
    return ex.subset(pos | (rng.random(ex.y.size) < keep_p))
