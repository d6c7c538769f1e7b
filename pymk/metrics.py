"""Every ranking and classification metric of the project, in one module with no heavy imports:
AUC and Hits@k (link prediction), PR-AUC, normalized entropy and calibration (the heads), NDCG,
Recall and MRR of ranked lists (offline evaluation), per-group Recall@k and NDCG@k (ranker training).
"""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10, 20, 50, 100)


def mean_ranks(values: np.ndarray) -> np.ndarray:
    """0-based rank of each value in ascending order; equal values share the mean of their ranks."""
    _, inv, counts = np.unique(values, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts
    return (below + (counts - 1) / 2.0)[inv]


def auc_and_hits(pos: np.ndarray, neg: np.ndarray, k: int = 50) -> dict[str, float]:
    """ROC AUC (Mann-Whitney, ties counted half) and Hits@k (positives above the k-th best negative)."""
    ranks = mean_ranks(np.concatenate([pos, neg])) + 1.0
    auc = (ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size)
    kth = np.sort(neg)[-k] if neg.size >= k else -np.inf
    return {"auc": float(auc), f"hits@{k}": float((pos > kth).mean())}


def rank_metrics(ranked: list[str], relevant: set[str], ks: tuple[int, ...] = KS) -> dict[str, float]:
    """MRR, and Recall@k, Hits@k and NDCG@k for each k, of one ranked list against a relevant set."""
    hits = np.array([u in relevant for u in ranked[: max(ks)]], dtype=bool)
    out: dict[str, float] = {}
    first = np.flatnonzero(hits)
    out["mrr"] = 1.0 / (first[0] + 1) if first.size else 0.0
    gains = hits / np.log2(np.arange(2, hits.size + 2))
    for k in ks:
        out[f"recall@{k}"] = hits[:k].sum() / len(relevant)
        out[f"hits@{k}"] = float(hits[:k].any())
        ideal = (1.0 / np.log2(np.arange(2, min(k, len(relevant)) + 2))).sum()
        out[f"ndcg@{k}"] = gains[:k].sum() / ideal
    return out


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p, kind="stable")
    hits = y[order] > 0
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision[hits].mean())


def normalized_entropy(y: np.ndarray, p: np.ndarray) -> float:
    """Log loss divided by the entropy of the base rate (below 1 beats predicting the average)."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    logloss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    base = np.clip(y.mean(), 1e-7, 1 - 1e-7)
    return float(logloss / -(base * np.log(base) + (1 - base) * np.log(1 - base)))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """Mean predicted vs observed rate in probability deciles, and expected calibration error."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            rows.append((round(float(p[m].mean()), 4), round(float(y[m].mean()), 4), int(m.sum())))
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return {"ece": round(float(ece), 4), "bins": rows}


def head_report(y: np.ndarray, p: np.ndarray) -> dict:
    return {"auc": round(auc_and_hits(p[y > 0], p[y == 0])["auc"], 4) if 0 < y.sum() < y.size else None,
            "pr_auc": round(average_precision(y, p), 4), "normalized_entropy": round(normalized_entropy(y, p), 4),
            "calibration": calibration(y, p), "positives": int(y.sum()), "rows": int(y.size)}


def ndcg_at_k(groups: np.ndarray, relevance: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups that have at least one relevant item."""
    out = []
    for g in np.unique(groups):
        m = groups == g
        rel = relevance[m]
        if rel.sum() == 0:
            continue
        order = np.lexsort((np.arange(rel.size), -scores[m]))[:k]
        gains = rel[order] / np.log2(np.arange(2, order.size + 2))
        ideal = np.sort(rel)[::-1][:k] / np.log2(np.arange(2, min(k, rel.size) + 2))
        out.append(gains.sum() / ideal.sum())
    return float(np.mean(out)) if out else 0.0


def group_ranking_values(group: np.ndarray, relevant: np.ndarray, y: np.ndarray, score: np.ndarray,
                         tiebreak: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k and NDCG@k of each group with relevant items (in group order).

    `group` numbers rows 0..G-1; `relevant[g]` is how many items are relevant to group g in all
    (found among its rows or not), so recall is against everything the viewer went on to connect with.
    Within a group rows are ranked by score, ties by `tiebreak` ascending.
    """
    if group.size and np.all(group[1:] >= group[:-1]) and not np.isnan(score).any():
        # rows grouped (as ranker examples are): each group sorted on its own, compiled (same sums)
        from pymk.group_topk import top_k_hits

        hits, dcg = np.zeros(relevant.size, dtype=np.int64), np.zeros(relevant.size)
        bounds = np.searchsorted(group, np.arange(relevant.size + 1))
        discount = 1.0 / np.log2(np.arange(k) + 2.0)
        top_k_hits(bounds, y > 0, score.astype(np.float64, copy=False), tiebreak, discount, hits, dcg)
    else:
        order = np.lexsort((tiebreak, -score, group))
        g, hit = group[order], y[order] > 0
        starts = np.searchsorted(g, np.arange(relevant.size))
        rank = np.arange(g.size) - starts[g]
        top = hit & (rank < k)
        hits = np.bincount(g[top], minlength=relevant.size)
        dcg = np.bincount(g[top], weights=1.0 / np.log2(rank[top] + 2.0), minlength=relevant.size)
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ok = relevant > 0
    ideal = ideal_cum[np.minimum(relevant, k)]
    return hits[ok] / relevant[ok], dcg[ok] / ideal[ok]


def group_ranking_metrics(group: np.ndarray, relevant: np.ndarray, y: np.ndarray, score: np.ndarray,
                          tiebreak: np.ndarray, k: int = 20) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over groups with relevant items (see group_ranking_values)."""
    recall, ndcg = group_ranking_values(group, relevant, y, score, tiebreak, k)
    return {f"recall@{k}": round(float(recall.mean()), 4) if recall.size else 0.0,
            f"ndcg@{k}": round(float(ndcg.mean()), 4) if ndcg.size else 0.0}


def paired_ratio_interval(ours: list[np.ndarray], theirs: list[np.ndarray], users: list[list[str]] | None = None,
                          level: float = 0.95, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean_runs(mean_users ours) / mean_runs(mean_users theirs).

    One pair of arrays per run (seed), one value per test user in each, aligned (paired: the same
    user's two values). Each draw resamples users with replacement and weighs every run's values by
    how often each of its users was drawn, the same weights for both rows. `users` names each run's
    users: a user tested in several runs is one draw for all of them (runs that test the same users
    move together); without names every run's users are distinct. The interval reflects which users
    happened to be tested, not the runs' own variation.
    """
    if len(ours) != len(theirs) or not ours or (users is not None and len(users) != len(ours)):
        raise ValueError(f"need one pair of per-user arrays per run (got {len(ours)} and {len(theirs)}"
                         f"{'' if users is None else f' and {len(users)} user lists'})")
    pairs = [(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
             for a, b in zip(ours, theirs, strict=True)]
    names = users if users is not None else [[f"{r}:{i}" for i in range(a.size)] for r, (a, _) in enumerate(pairs)]
    for (a, b), who in zip(pairs, names, strict=True):
        if a.shape != b.shape or a.size == 0 or len(who) != a.size:
            raise ValueError(f"per-user arrays must be non-empty and aligned (shapes {a.shape} and {b.shape}, "
                             f"{len(who)} users)")
    union, index = np.unique(np.concatenate([np.asarray(w, dtype=str) for w in names]), return_inverse=True)
    offsets = np.cumsum([0] + [a.size for a, _ in pairs])
    rng = np.random.default_rng(seed)
    ratio = np.empty(draws)
    chunk = max(1, 4_000_000 // union.size)   # draws at a time: memory bounded whatever the number of users
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, draws, chunk):
            size = min(chunk, draws - lo)
            weight = rng.multinomial(union.size, np.full(union.size, 1.0 / union.size), size=size).astype(np.float64)
            num, den = np.zeros(size), np.zeros(size)
            for (a, b), first, last in zip(pairs, offsets[:-1], offsets[1:], strict=True):
                w = weight[:, index[first:last]]
                drawn = w.sum(axis=1)
                num += w @ a / drawn
                den += w @ b / drawn
            ratio[lo:lo + size] = np.where(den > 0, num / den, np.nan)
    if np.isnan(ratio).all():
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(ratio, [tail, 100 - tail])
    return float(lo), float(hi)
