"""Per-group Recall@k and NDCG@k: the compiled path (grouped rows) against the numpy lexsort path."""

from __future__ import annotations

import numpy as np

from pymk.metrics import group_ranking_metrics, group_ranking_values


def test_compiled_group_metrics_equal_the_lexsort_path_bit_for_bit():
    rng = np.random.default_rng(5)
    sizes = rng.integers(0, 60, 300)   # empty groups and groups shorter than k included
    group = np.repeat(np.arange(sizes.size), sizes)
    tiebreak = np.concatenate([rng.permutation(1000)[:s] for s in sizes]).astype(np.int64)
    score = np.round(rng.normal(size=group.size), 1)   # many equal scores: the tie-break decides
    y = (rng.random(group.size) < 0.15).astype(np.float32)
    relevant = np.bincount(group, weights=y, minlength=sizes.size).astype(np.int64) + rng.integers(0, 3, sizes.size)
    for k in (1, 5, 20, 100):
        compiled = group_ranking_values(group, relevant, y, score, tiebreak, k)
        shuffled = rng.permutation(group.size)   # rows out of group order: the lexsort path
        reference = group_ranking_values(group[shuffled], relevant, y[shuffled], score[shuffled], tiebreak[shuffled], k)
        for a, b in zip(compiled, reference, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # float32 scores (the models' outputs) rank as their float64 values do
    m32 = group_ranking_metrics(group, relevant, y, score.astype(np.float32), tiebreak, 20)
    assert m32 == group_ranking_metrics(group, relevant, y, score, tiebreak, 20)
