"""The pair features' columns for a block, filled by one compiled pass (numba) instead of ~60 numpy
calls of a few microseconds each on a few hundred rows (the cost of an on-request feature block).

The pass writes every column that needs only lookups, counts, sorts and arithmetic, in the same
floating-point operations, in the same order, as the numpy code it replaced (tests/features_reference.py,
the oracle of tests/test_feature_columns.py). What goes through a logarithm is written as the
argument to a separate contiguous block, taken in one numpy call by ranker/features.py: numpy's and
the compiler's logarithms may differ in the last bit, so they stay numpy's. Rows are grouped by
viewer (`order`, `bounds`); per-viewer ranks see only their viewer's rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from graph.snapshot.csr import search_left, search_right
from ranker.feature_names import FEATURE_NAMES, SAME_FIELDS, SOURCE_NAMES

_C = {name: i for i, name in enumerate(FEATURE_NAMES)}


class Layout(NamedTuple):
    """Where `fill` writes each column. An argument, not module globals: numba's on-disk cache freezes a
    compiled function's globals and is invalidated only by changes to this file, so a column list
    changed in ranker/feature_names.py would be written at its old positions, silently."""

    mutual: int
    aa: int
    ra: int
    jaccard: int
    links: int
    car: int
    density: int
    age_gap: int
    same: np.ndarray
    sends_7d: int
    accept_rate: int
    pair_imp: int
    new_v: int   # then w5, w20
    new_c: int
    growth: int
    recent_pct: int
    degree_pct: int
    v_side: int
    c_side: int
    span: int
    paths3_norm: int
    source_in: np.ndarray   # in_<source>; its inv_rank_<source> column follows


def layout(names: tuple[str, ...] = FEATURE_NAMES) -> Layout:
    """Each column's position in `names` (a feature list in FEATURE_NAMES' vocabulary)."""
    c = {name: i for i, name in enumerate(names)}
    return Layout(
        mutual=c["mutual"], aa=c["adamic_adar"], ra=c["resource_allocation"], jaccard=c["jaccard"],
        links=c["mutual_links"], car=c["car"], density=c["mutual_density"], age_gap=c["age_gap"],
        same=np.array([c[f"same_{f}"] for f in SAME_FIELDS], dtype=np.int64),   # GraphAt.codes' order
        sends_7d=c["viewer_sends_7d"], accept_rate=c["cand_accept_rate"], pair_imp=c["pair_impressions"],
        new_v=c["viewer_new_ties_w1"], new_c=c["cand_new_ties_w1"], growth=c["cand_growth_w20"],
        recent_pct=c["cand_recent_pct_in_list"], degree_pct=c["cand_degree_pct_in_list"],
        v_side=c["viewer_side_strength"], c_side=c["cand_side_strength"], span=c["cand_new_ties_span10"],
        paths3_norm=c["paths3_norm"], source_in=np.array([c[f"in_{s}"] for s in SOURCE_NAMES], dtype=np.int64))


LAYOUT = layout()
# log1p arguments, in this order: columns log1p(arg)
LOG1P = np.array([_C[n] for n in ("log_mutual", "log_deg_viewer", "log_deg_cand", "log_cand_pending", "ppr_rank",
                                  "viewer_interactions_w5", "cand_interactions_w5", "log_paths3")])
# log arguments: log(ppr + 1e-7), log(ppr / max(deg, 1) + 1e-9)
LOG = np.array([_C["log_ppr"], _C["log_ppr_per_degree"]])


@njit(cache=True, nogil=True)
def _count(keys, user, lo, hi):   # pragma: no cover - compiled
    """Events in keys (sorted user << 32 | second) of `user` with second in [lo, hi)."""
    base = np.int64(user) << 32
    return np.float64(search_left(keys, base | hi) - search_left(keys, base | lo))


@njit(cache=True, nogil=True)
def _group_mean_ranks(x, rows, col, out):   # pragma: no cover - compiled
    """out[rows[i], col]: x[i]'s ascending rank among x (ties share their mean), / (len - 1)."""
    order = np.argsort(x)
    scale = max(rows.size - 1, 1)
    first = 0
    while first < order.size:   # a run of equal values from `first`
        end = first + 1
        while end < order.size and x[order[end]] == x[order[first]]:
            end += 1
        rank = (first + (end - first - 1) / 2.0) / scale
        for k in range(first, end):
            out[rows[order[k]], col] = rank
        first = end


def fill(out: np.ndarray, logs: np.ndarray, *args: object) -> None:
    """`_fill` at this code's column layout (LAYOUT, read at each call)."""
    _fill(LAYOUT, out, logs, *args)


@njit(cache=True, nogil=True)
def _fill(col, out, logs, viewers, cands, order, bounds, deg, walk, codes, age, new_ties, interactions, span,
          ppr_keys, ppr_vals, n, src_ranks, answers, sends, week_key, t_key, imp_src, imp_dst, imp_sec,
          t_sec):   # pragma: no cover - compiled
    """col: the column layout (Layout); out: (rows, features) zeros; logs: (10, rows) for the log1p
    (LOG1P) and log (LOG) arguments. walk: PairWalk's (8, rows) block; codes: (users, 4) categorical
    codes (Layout.same); age: codes or empty;
    new_ties: (3, users); src_ranks: (sources, rows), NaN where a source did not propose the row (or
    a source absent: all NaN, its columns stay 0). answers: GraphAt.answers. Requests sent: keys user << 32
    | second, counted in [week_key, t_key); impressions (imp_*, by viewer) in seconds before t_sec."""
    has_age = age.size > 0
    for o in range(viewers.size):
        rows = order[bounds[o]:bounds[o + 1]]
        if rows.size == 0:
            continue
        v = viewers[o]
        dv = np.float64(deg[v])
        sends_7d = _count(sends, v, week_key, t_key)
        lo, hi = search_left(imp_src, v), search_right(imp_src, v)
        shown = np.sort(imp_dst[lo:hi][imp_sec[lo:hi] < t_sec])
        ppr = np.zeros(rows.size)
        recent, degree = np.empty(rows.size), np.empty(rows.size)
        for i in range(rows.size):
            r = rows[i]
            c = cands[r]
            dc = np.float64(deg[c])
            m, links = walk[0, r], walk[5, r]
            out[r, col.mutual] = m
            out[r, col.aa] = walk[1, r]
            out[r, col.ra] = walk[2, r]
            out[r, col.jaccard] = m / max(dv + dc - m, 1.0)
            out[r, col.links] = links
            out[r, col.car] = m * links
            out[r, col.density] = links / max(m * (m - 1) / 2, 1.0)
            for k in range(col.same.size):
                out[r, col.same[k]] = 1.0 if codes[c, k] == codes[v, k] and codes[v, k] >= 0 else 0.0
            if has_age and age[c] >= 0 and age[v] >= 0:
                out[r, col.age_gap] = abs(age[c] - age[v])
            out[r, col.sends_7d] = sends_7d
            got = answers[0, c]
            out[r, col.accept_rate] = (answers[1, c] + 1.0) / (got + 2.0)
            out[r, col.pair_imp] = search_right(shown, c) - search_left(shown, c)
            for w in range(3):
                out[r, col.new_v + w] = new_ties[w, v]
                out[r, col.new_c + w] = new_ties[w, c]
            out[r, col.growth] = new_ties[2, c] / max(dc, 1.0)
            recent[i], degree[i] = new_ties[1, c], dc
            out[r, col.v_side] = walk[3, r]
            out[r, col.c_side] = walk[4, r]
            out[r, col.span] = span[c]
            out[r, col.paths3_norm] = walk[7, r] / np.sqrt(max(dv, 1.0) * max(dc, 1.0))
            for s in range(src_ranks.shape[0]):
                rank = src_ranks[s, r]
                if not np.isnan(rank):
                    out[r, col.source_in[s]] = 1.0
                    out[r, col.source_in[s] + 1] = 1.0 / (1.0 + rank)
            key = o * n + c
            at = search_left(ppr_keys, key)
            if at < ppr_keys.size and ppr_keys[at] == key:
                ppr[i] = ppr_vals[at]
            logs[0, r] = m
            logs[1, r] = dv
            logs[2, r] = dc
            logs[3, r] = max(got - answers[2, c], 0.0)
            logs[5, r] = interactions[v]
            logs[6, r] = interactions[c]
            logs[7, r] = walk[6, r]
            logs[8, r] = ppr[i] + 1e-7
            logs[9, r] = ppr[i] / max(dc, 1.0) + 1e-9
        # the PageRank rank among the viewer's rows: by score, then candidate, then row (a stable sort)
        mine = cands[rows]
        by_cand = (np.arange(rows.size) if np.all(mine[1:] >= mine[:-1])   # as candidate_block lists them
                   else np.argsort(mine, kind="mergesort"))
        by_score = by_cand[np.argsort(-ppr[by_cand], kind="mergesort")]
        for k in range(rows.size):
            logs[4, rows[by_score[k]]] = k
        _group_mean_ranks(recent, rows, col.recent_pct, out)
        _group_mean_ranks(degree, rows, col.degree_pct, out)
