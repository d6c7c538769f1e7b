"""Training examples from how the graph grew: which suggestions would have turned into ties.

For several cut times t inside the training graph, the serving stages (sources -> merge -> cheap
filters) run on the graph as it stood at t; each candidate is labelled 1 when the pair forms a tie
in the window after t. Features are computed by the same FeatureContext as serving, on the graph
at t. A graph without tie times (or with too few distinct ones for two cuts) gets random holdouts
instead of cuts (each "cut" hides its own small random share of ties and asks which of them the
candidates recover).

No leakage: the snapshot the sources and features read at a cut holds only ties formed before it,
and only later ties are labels. The validation cut's label window lies after every training cut's
label window, so model selection sees a later period than anything trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from candidates.ann import build_index
from candidates.base import CandidateSource
from candidates.filters import SnapshotStateReader
from candidates.pipeline import PER_SOURCE_K, CandidatePipeline, PipelineConfig
from candidates.registry import REGISTRY
from graph.snapshot import Snapshot, as_of, data_time, restrict_ties
from graph.snapshot.csr import run_bounds, undirected_keys
from graph.splits import time_boundaries
from pymk.progress import progress_bar
from ranker.batch import candidate_block, merge_order
from ranker.features import FEATURE_NAMES, FeatureContext

log = logging.getLogger(__name__)
BLOCK = 64   # viewers whose candidates and features are computed at once


@dataclass(frozen=True)
class HistoryConfig:
    train_cuts: tuple[float, ...] = (0.5, 0.6, 0.7)   # tie-time quantiles of the training cuts
    val_cut: float = 0.85                              # the validation cut (labels up to the end)
    horizon: float = 0.15                              # label window, as a share of ties
    holdout_share: float = 0.05   # untimed graphs: the share of ties each holdout ("cut") hides
    viewers_per_cut: int = 800
    per_source_k: int = PER_SOURCE_K   # as serving proposes (the ranker's manifest records it)
    seed: int = 0


@dataclass
class ConnectExamples:
    x: np.ndarray          # [rows, features] float32
    y: np.ndarray          # 1: the pair formed a tie in the label window
    group: np.ndarray      # one group per (cut, viewer), consecutive rows
    viewer: np.ndarray
    cand: np.ndarray
    cut: np.ndarray        # which cut (index) the row comes from
    relevant: np.ndarray   # per group: how many label ties the viewer has (candidates or not)

    def subset(self, groups_mask: np.ndarray) -> ConnectExamples:
        rows = groups_mask[self.group]
        _, new_group = np.unique(self.group[rows], return_inverse=True)
        return ConnectExamples(self.x[rows], self.y[rows], new_group, self.viewer[rows], self.cand[rows],
                               self.cut[rows], self.relevant[groups_mask])

    @staticmethod
    def concat(parts: list[ConnectExamples]) -> ConnectExamples:
        parts = [p for p in parts if p.y.size]
        if not parts:
            return ConnectExamples(np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.float32),
                                   *(np.zeros(0, np.int64) for _ in range(5)))
        offsets = np.cumsum([0] + [p.relevant.size for p in parts[:-1]])
        return ConnectExamples(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                               np.concatenate([p.group + o for p, o in zip(parts, offsets, strict=True)]),
                               *(np.concatenate([getattr(p, f) for p in parts])
                                 for f in ("viewer", "cand", "cut", "relevant")))


def build_sources(snap: Snapshot, names: list[str] | None = None, emb: np.ndarray | None = None
                  ) -> list[CandidateSource]:
    """The registered sources (or `names`), plus the embedding ANN source when embeddings are given.

    The ANN source searches exactly whatever the graph's size: a cut's examples (or a test period's)
    query a few thousand viewers at most, one matrix product per block of them, where an HNSW index
    over 1M users took ~60 s to build at every cut; HNSW's recall@10 against exact search is 0.997
    (RESULTS), so these are the candidates serving's index proposes."""
    index = None if emb is None else build_index(emb, exact_max=emb.shape[0])
    return REGISTRY.build_all(snap, names, embeddings=emb, index=index)


def time_cuts(snap: Snapshot, points: tuple[float, ...], horizon: float
              ) -> list[tuple[Snapshot, float, np.ndarray, np.ndarray]] | None:
    """(graph at the cut, cut time, label src, label dst) for each tie-time quantile; None if untimed.

    Labels are the ties from the cut to the `horizon` share of ties after it; the last point's window
    runs to the end when it reaches it. Times too coarse for distinct quantiles (days or years) get
    the cuts those times allow instead (`coarse_cuts`)."""
    src, dst, since = snap.ties()
    timed = np.isfinite(since)
    if timed.mean() < 0.5:
        return None  # untimed
    ts = since[timed]
    starts = np.quantile(ts, points)
    ends = np.quantile(ts, np.minimum(1.0, np.add(points, horizon)))
    ends[ends >= ts.max()] = np.inf   # a window reaching the latest tie holds it
    if np.unique(starts).size < len(points):
        coarse = coarse_cuts(ts, points, horizon)
        if coarse is None:
            return None  # times that cannot order the ties (e.g. a constant weight column)
        starts, ends = coarse
    out = []
    for i, (t, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        label = timed & (since >= t) & (since < end)
        out.append((as_of(snap, t), t, src[label], dst[label]))
        log.info("cut %d at %.0f: %d label ties", i, t, label.sum())
    return out


def coarse_cuts(ts: np.ndarray, points: tuple[float, ...], horizon: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(cut times, label window ends) where many ties share a time: the last point at the tie time
    whose share of earlier ties is closest to it, each earlier point at the closest time before that
    (points landing on one time become one cut); a window ends at the time closest to its point's
    share plus `horizon` (the latest such point's), after the cut and, for earlier cuts, not after
    the last one, or at the end when that share reaches 1. None when the times allow fewer distinct
    cuts than the points need (one when one is asked, else two)."""
    values, shares = time_boundaries(ts)

    def closest(lo: float, hi: float, share: float) -> float | None:
        idx = np.flatnonzero((values > lo) & (values <= hi))
        return float(values[idx[np.argmin(np.abs(shares[idx] - share))]]) if idx.size else None

    last = closest(-np.inf, np.inf, points[-1])
    if last is None:
        return None
    reach = {last: min(1.0, points[-1] + horizon)}   # cut time -> the share its label window reaches
    for p in points[:-1]:
        if (t := closest(-np.inf, np.nextafter(last, -np.inf), p)) is not None:
            reach[t] = max(reach.get(t, 0.0), min(1.0, p + horizon))
    if len(points) > 1 and len(reach) < 2:
        return None
    starts = np.array(sorted(reach))
    ends = [np.inf if reach[t] >= 1.0 else closest(t, last if t < last else np.inf, reach[t]) for t in starts.tolist()]
    ends = [np.inf if e is None else e for e in ends]
    log.info("ties share times (%d distinct): cuts at %s, labels up to %s", values.size + 1,
             [f"{t:.0f}" for t in starts.tolist()], [f"{e:.0f}" for e in ends])
    return starts, np.array(ends)


class Holdout(NamedTuple):
    graph: Snapshot        # the graph with this holdout's ties (and validation's) hidden
    label_src: np.ndarray  # the hidden ties the candidates are labelled by
    label_dst: np.ndarray
    unlabelled: np.ndarray  # sorted tie keys (undirected_keys) hidden but not labels: rows of them are left out


def holdouts(snap: Snapshot, share: float, count: int, seed: int) -> tuple[list[Holdout], Snapshot]:
    """`count` disjoint seeded random shares of an untimed graph's ties, each hidden in turn, the last
    one for validation; and the graph with all of them hidden (what embeddings may be trained on).

    Small shares keep the graph the features read close to the one served (hiding 15% once left the
    inner graph at 68% of the ties where the outer test reads 80%). The validation holdout's ties are
    hidden from every training holdout's graph too, so no training row is computed on a graph that
    holds a validation label; a training row of such a pair is left out (labelled 0 it would teach
    that a real tie is not one, labelled 1 it would train on validation's labels)."""
    src, dst, _ = snap.ties()
    if not 0 < share * count < 1:
        raise ValueError(f"holdout share {share} x {count} holdouts must hide between 0 and all of the ties")
    bucket = np.minimum((np.random.default_rng(seed).random(src.size) / share).astype(np.int64), count)
    val = bucket == count - 1
    n = snap.num_users
    now = data_time(snap)   # a timed graph's rows are computed on it as it stands, not as it stood at 0
    t = 0.0 if now is None else now
    out = [Holdout(_hidden(snap, src, dst, (bucket == i) | val, t), src[bucket == i], dst[bucket == i],
                   np.sort(undirected_keys(src[val], dst[val], n))) for i in range(count - 1)]
    out.append(Holdout(_hidden(snap, src, dst, val, t), src[val], dst[val], np.zeros(0, dtype=np.int64)))
    return out, _hidden(snap, src, dst, bucket < count, t)


def _hidden(snap: Snapshot, src: np.ndarray, dst: np.ndarray, hide: np.ndarray, t: float) -> Snapshot:
    """The graph without the ties `hide` marks, as of time t."""
    past = restrict_ties(snap, ~_entry_mask(snap, src[hide], dst[hide]))
    past.meta["as_of"] = t
    return past


def _entry_mask(snap: Snapshot, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CSR entries of the undirected pairs (a, b), both directions."""
    n = snap.num_users
    return np.isin(undirected_keys(snap.entry_rows(), snap.indices, n), undirected_keys(a, b, n))


def examples_at_cut(past: Snapshot, t: float, label_src: np.ndarray, label_dst: np.ndarray, cut_id: int,
                    viewers: int, per_source_k: int, rng: np.random.Generator, emb: np.ndarray | None = None,
                    sources: list[str] | None = None, progress: bool = False,
                    unlabelled: np.ndarray | None = None) -> ConnectExamples:
    """Candidates and labels for sampled viewers who form at least one new tie after the cut; rows of
    the pairs in `unlabelled` (sorted keys, `undirected_keys`) are left out."""
    deg = past.degree
    ok = (deg[label_src] > 0) & (deg[label_dst] > 0)
    a, b = np.concatenate([label_src[ok], label_dst[ok]]), np.concatenate([label_dst[ok], label_src[ok]])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    users = np.unique(a)
    chosen = np.sort(users[rng.permutation(users.size)[:viewers]])
    built = build_sources(past, sources, emb)
    pipeline = CandidatePipeline(past, built, SnapshotStateReader(past),
                                 PipelineConfig(per_source_k=per_source_k, source_budget_s=600.0))
    ctx = FeatureContext(past, emb)
    parts = []
    # the serving stages over blocks of viewers at once (ranker/batch.py: each viewer's rows are the
    # ones the serving pipeline gives it alone, tested)
    for start in progress_bar(range(0, chosen.size, BLOCK), desc=f"cut {cut_id}", enabled=progress):
        block = candidate_block(pipeline, ctx, chosen[start:start + BLOCK], t)
        order = merge_order(block)   # each viewer's rows in its sources' order (see merge_order)
        owner, cands, x = block.owner[order], block.cand[order], block.x[order]
        bounds = np.searchsorted(owner, np.arange(block.users.size + 1))
        for i, user in enumerate(block.users.tolist()):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            lo_f, hi_f = run_bounds(a, user)
            future = b[lo_f:hi_f]
            idx, rows = cands[lo:hi], x[lo:hi]
            if unlabelled is not None and unlabelled.size:
                keep = ~np.isin(undirected_keys(np.full(idx.size, user), idx, past.num_users), unlabelled)
                idx, rows = idx[keep], rows[keep]
                if idx.size == 0:   # no row left: no group (as for a viewer without candidates)
                    continue
            parts.append((rows, np.isin(idx, future).astype(np.float32), user, idx, future.size))
    pipeline.close()
    if not parts:
        return ConnectExamples.concat([])
    sizes = [p[3].size for p in parts]
    return ConnectExamples(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
        np.repeat(np.arange(len(parts)), sizes), np.repeat([p[2] for p in parts], sizes),
        np.concatenate([p[3] for p in parts]), np.full(sum(sizes), cut_id, dtype=np.int64),
        np.array([p[4] for p in parts], dtype=np.int64))


def history_examples(snap: Snapshot, cfg: HistoryConfig, embed: Callable[[Snapshot], np.ndarray] | None = None,
                     sources: list[str] | None = None, progress: bool = False
                     ) -> tuple[ConnectExamples, ConnectExamples]:
    """(training examples, validation examples) from the graph's own history.

    Timed graphs: one group of rows per training cut, validation from the last cut. Untimed graphs:
    one group per holdout (ranker/history.py `holdouts`), validation from the last. `embed`, when
    given, trains embeddings on the earliest graph any cut sees (no cut can see a tie the embeddings
    learned from after it); they feed the ANN source and `emb_sim`.
    """
    rng = np.random.default_rng(cfg.seed)
    cuts = time_cuts(snap, (*cfg.train_cuts, cfg.val_cut), cfg.horizon)
    if cuts is not None:
        emb = embed(cuts[0][0]) if embed is not None else None
        parts = [examples_at_cut(past, t, ls, ld, i, cfg.viewers_per_cut, cfg.per_source_k, rng, emb, sources,
                                 progress) for i, (past, t, ls, ld) in enumerate(cuts)]
    else:
        hidden, earliest = holdouts(snap, cfg.holdout_share, len(cfg.train_cuts) + 1, cfg.seed)
        emb = embed(earliest) if embed is not None else None
        parts = [examples_at_cut(h.graph, h.graph.meta["as_of"], h.label_src, h.label_dst, i, cfg.viewers_per_cut,
                                 cfg.per_source_k, rng, emb, sources, progress, h.unlabelled)
                 for i, h in enumerate(hidden)]
    train, val = ConnectExamples.concat(parts[:-1]), parts[-1]
    log.info("history examples: %d training rows (%.2f%% positive), %d validation rows", train.y.size,
             100 * train.y.mean() if train.y.size else 0.0, val.y.size)
    return train, val
