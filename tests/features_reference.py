"""FeatureContext.block_features as it was before its columns were compiled (numpy, ~60 array calls per
block), kept as the oracle the compiled columns must match."""

from __future__ import annotations

import numpy as np

from candidates.ppr import forward_push_block
from graph.geo import haversine_km
from graph.snapshot.csr import lookup, pair_keys, rank_in_group, run_bounds
from graph.snapshot.format import EVENT_CODE
from ranker.features import SOURCE_NAMES, WEEK
from ranker.paths import pair_walk, runs


class _EventIndex:
    """Counts of one event type per user in a time window, by binary search on (user, second) keys."""

    def __init__(self, users: np.ndarray, ts: np.ndarray) -> None:
        self.keys = np.sort((users.astype(np.int64) << 32) | np.floor(ts).astype(np.int64))

    def count(self, users: np.ndarray, t_lo: float, t_hi: float) -> np.ndarray:
        """Events of each user with floor(ts) in [floor(t_lo), floor(t_hi))."""
        u = users.astype(np.int64) << 32
        lo = np.searchsorted(self.keys, u | int(np.floor(max(t_lo, 0))), side="left")
        hi = np.searchsorted(self.keys, u | int(np.floor(max(t_hi, 0))), side="left")
        return (hi - lo).astype(np.float64)


def group_mean_ranks(x: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Each row's ascending rank among its owner's rows, equal values sharing their mean rank, divided by
    (rows of that owner - 1): 0 for the group's smallest, 1 for its largest."""
    order = np.lexsort((x, owner))
    xs, os = x[order], owner[order]
    new_run = np.concatenate(([True], (xs[1:] != xs[:-1]) | (os[1:] != os[:-1])))
    run = np.flatnonzero(new_run) if x.size else np.zeros(0, int)
    lens = np.diff(np.append(run, x.size))
    first = rank_in_group(os)[run]
    out = np.empty(x.size)
    out[order] = np.repeat(first + (lens - 1) / 2.0, lens)
    size = np.bincount(owner, minlength=int(owner.max(initial=-1)) + 1)[owner]
    return out / np.maximum(size - 1, 1)


def reference_features(ctx, viewers, owner, cands, t, ranks=None, ppr=None):
    """ctx.block_features(viewers, owner, cands, t, ranks, ppr), the numpy way (int64 arrays)."""
    at = ctx.graph_at(t)
    g, deg, recent_start = at.g, at.deg, at.recent_start
    n, n_c = g.num_users, cands.size
    vrow = viewers[owner]
    deg_c = deg[cands].astype(np.float64)
    # mutual friends, their links and paths of length 3: one compiled walk out of each viewer
    walk = pair_walk(g, deg, at.inv_log_deg, at.strength, viewers, cands, *runs(owner, viewers.size))
    mutual, aa, ra, links = walk.mutual, walk.aa, walk.ra, walk.links
    # Recency is measured in the graph's own tempo, never in days: a week means different things on a
    # graph that grows by the minute and on one that grows by the month, or in a busy and a quiet
    # period of one graph (a model trained on days-windows at busy inner cuts misranked a quiet test cut).
    tempo = t - recent_start[1] if np.isfinite(recent_start[1]) and t > recent_start[1] else np.inf
    # a path viewer - m - candidate counts by how recent its newer tie is (unknown times: weight 1)
    newer = walk.path_newer
    recent = np.bincount(walk.path_row, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                         minlength=n_c)[walk.first_row]
    deg_v = deg[viewers].astype(np.float64)[owner]
    jaccard = mutual / np.maximum(deg_v + deg_c - mutual, 1.0)
    paths3 = walk.paths3
    paths3_norm = walk.paths3_weighted / np.sqrt(np.maximum(deg_v, 1.0) * np.maximum(deg_c, 1.0))

    def since_last(last: np.ndarray) -> np.ndarray:
        known = np.isfinite(last)
        out = np.full(last.size, -1.0)
        out[known] = np.log1p(np.maximum(t - last[known], 0.0) / tempo)
        return out

    def age_share(first: np.ndarray) -> np.ndarray:
        finite = at.first_tie[np.isfinite(at.first_tie)]
        life = t - finite.min() if finite.size else 0.0
        known = np.isfinite(first) & (life > 0)
        out = np.full(first.size, -1.0)
        out[known] = np.maximum(t - first[known], 0.0) / life
        return out

    viewer_new = [w[vrow] for w in at.new_ties]
    cand_new = [w[cands] for w in at.new_ties]
    p_owner, p_nodes, p_vals = ppr if ppr is not None else forward_push_block(
        g.indptr, g.indices, deg, viewers, ctx.ppr_alpha, ctx.ppr_eps)
    hit, pos = lookup(pair_keys(p_owner, p_nodes, n), pair_keys(owner, cands, n))
    ppr = np.where(hit, p_vals[pos], 0.0) if p_vals.size else np.zeros(n_c)
    order = np.lexsort((cands, -ppr, owner))
    ppr_rank = np.empty(n_c)
    ppr_rank[order] = rank_in_group(owner[order])
    cat = g.categorical

    def same(col: str) -> np.ndarray:
        codes = cat.get(col)
        if codes is None:
            return np.zeros(n_c)
        return ((codes[cands] == codes[vrow]) & (codes[vrow] >= 0)).astype(np.float64)

    lat, lon = g.numeric["lat"], g.numeric["lon"]
    dist = haversine_km(lat[vrow], lon[vrow], lat[cands], lon[cands])
    missing = np.isnan(dist)
    age = ctx.snap.categorical.get("age_group")
    age_gap = (np.abs(age[cands] - age[vrow]) * ((age[cands] >= 0) & (age[vrow] >= 0))
               if age is not None else np.zeros(n_c))
    ev = ctx.snap.events
    send, acc, dec = (ev["type"] == EVENT_CODE[x] for x in ("send", "accept", "decline"))
    received = _EventIndex(ev["dst"][send], ev["ts"][send]).count(cands, 0, t)
    accepted = _EventIndex(ev["src"][acc], ev["ts"][acc]).count(cands, 0, t)
    responded = _EventIndex(ev["src"][acc | dec], ev["ts"][acc | dec]).count(cands, 0, t)
    sends_7d = _EventIndex(ev["src"][send], ev["ts"][send]).count(viewers, t - WEEK, t)[owner]
    pair_imp = _impressions_before(ctx, viewers, owner, cands, t, n)
    emb_sim = (np.einsum("ij,ij->i", ctx.emb[cands], ctx.emb[vrow]).astype(np.float64)
               if ctx.emb is not None else np.zeros(n_c))
    src_cols = []
    for name in SOURCE_NAMES:
        r = (ranks or {}).get(name)
        src_cols += ([np.zeros(n_c), np.zeros(n_c)] if r is None
                     else [(~np.isnan(r)).astype(np.float64), np.nan_to_num(1.0 / (1.0 + r), nan=0.0)])
    cols = [
        mutual, np.log1p(mutual), aa, ra, jaccard, np.log1p(deg_v), np.log1p(deg_c),
        links, mutual * links, links / np.maximum(mutual * (mutual - 1) / 2, 1.0),
        same("school"), same("employer"), same("city"), np.where(missing, 0.0, np.log1p(dist)),
        missing.astype(np.float64), age_gap, same("language"), sends_7d,
        (accepted + 1.0) / (received + 2.0), np.log1p(np.maximum(received - responded, 0.0)),
        pair_imp, emb_sim,
        np.log(ppr + 1e-7), np.log1p(ppr_rank), np.log(ppr / np.maximum(deg_c, 1.0) + 1e-9),
        *viewer_new, *cand_new,
        since_last(at.last_tie[vrow]), since_last(at.last_tie[cands]),
        cand_new[2] / np.maximum(deg_c, 1.0), recent, group_mean_ranks(cand_new[1], owner),
        group_mean_ranks(deg_c, owner), walk.viewer_side, walk.cand_side, np.log1p(at.interactions[vrow]),
        np.log1p(at.interactions[cands]), at.new_ties_span[cands], np.log1p(paths3), paths3_norm,
        age_share(at.first_tie[vrow]), age_share(at.first_tie[cands]), recent_partners(g, deg, cands), *src_cols,
    ]
    return np.column_stack(cols).astype(np.float32)



def recent_partners(g, deg: np.ndarray, cands: np.ndarray, latest: int = 5) -> np.ndarray:
    """Each candidate's partners of its `latest` newest ties (and of every tie as new as the last of them;
    unknown times oldest): their mean log(1 + degree), summed in CSR order; 0 without ties."""
    out, log_deg = np.zeros(cands.size), np.log1p(deg.astype(np.float64))   # numpy's log, as in the column
    for i, c in enumerate(cands.tolist()):
        lo, hi = int(g.indptr[c]), int(g.indptr[c + 1])
        times = [-np.inf if np.isnan(s) else float(s) for s in g.since[lo:hi].tolist()]
        if not times:
            continue
        floor = sorted(times, reverse=True)[latest - 1] if len(times) >= latest else -np.inf
        total, count = 0.0, 0
        for j, s in zip(range(lo, hi), times, strict=True):
            if s >= floor:
                total += float(log_deg[g.indices[j]])
                count += 1
        out[i] = total / count
    return out


def _impressions_before(ctx, viewers: np.ndarray, owner: np.ndarray, cands: np.ndarray, t: float,
                        n: int) -> np.ndarray:
    """How often each candidate was shown to its viewer in seconds before t."""
    imp = ctx.snap.events["type"] == EVENT_CODE["impression"]
    order = np.lexsort((ctx.snap.events["ts"][imp], ctx.snap.events["src"][imp]))
    imp_src, imp_dst, imp_ts = (ctx.snap.events[k][imp][order] for k in ("src", "dst", "ts"))
    lo, hi = run_bounds(imp_src, viewers)
    lens = hi - lo
    pos = np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
    shown_to = np.repeat(np.arange(viewers.size), lens)
    before = np.floor(imp_ts[pos]) < np.floor(t)
    keys = np.sort(pair_keys(shown_to[before], imp_dst[pos][before].astype(np.int64), n))
    probe = pair_keys(owner, cands, n)
    return (np.searchsorted(keys, probe, "right") - np.searchsorted(keys, probe, "left")).astype(np.float64)
