"""FAISS retrieval checked against exact search: the exact index equals brute force and HNSW's recall is
high, a large excluded set still leaves the exact top K, and a block's search is each viewer's own."""

from __future__ import annotations

import numpy as np
import pytest

from candidates.ann import build_index, search_excluding


def test_faiss_exact_equals_brute_force_and_hnsw_recall():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(2000, 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    exact = build_index(emb)
    hnsw = build_index(emb, exact_max=100)
    assert type(exact).__name__ == "IndexFlatIP" and type(hnsw).__name__ == "IndexHNSWFlat"
    recalls = []
    for q in range(50):
        truth = np.argsort(-(emb @ emb[q]), kind="stable")[:11]
        ids, scores = search_excluding(exact, emb[q], 10, {q})
        assert ids.tolist() == [i for i in truth.tolist() if i != q][:10]
        assert np.allclose(scores, emb[ids] @ emb[q], atol=1e-5)
        approx, _ = search_excluding(hnsw, emb[q], 10, {q})
        recalls.append(len(set(approx.tolist()) & set(ids.tolist())) / 10)
    assert np.mean(recalls) > 0.9


def test_search_excluding_a_large_set_still_returns_the_exact_top_k():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(2000, 16)).astype(np.float32)
    exclude = set(rng.choice(2000, 1500, replace=False).tolist())
    allowed = np.array(sorted(set(range(2000)) - exclude))
    for index in (build_index(emb), build_index(emb, exact_max=100)):
        ids, _ = search_excluding(index, emb[7], 10, exclude)
        assert ids.size == 10 and not set(ids.tolist()) & exclude
        truth = allowed[np.argsort(-(emb[allowed] @ emb[7]), kind="stable")[:10]]
        overlap = len(set(ids.tolist()) & set(truth.tolist()))
        assert overlap == 10 if type(index).__name__ == "IndexFlatIP" else overlap >= 8


@pytest.mark.parametrize("n,k", [(1007, 30), (37, 25), (40, 60)])
def test_exact_block_is_the_exact_top_k_whatever_the_size(n, k):
    """exact_block on sizes that are not a multiple of its chunk, and with k beyond the chunk count or
    beyond the users left: the true top k by inner product (ties to the lower index), nothing excluded."""
    from candidates.ann import exact_block

    rng = np.random.default_rng(n)
    emb = rng.normal(size=(n, 12)).astype(np.float32)
    emb[5:9] = emb[4]   # ties
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    users = rng.choice(n, 6, replace=False)
    banned = [set(rng.choice(n, n // 4, replace=False).tolist()) | {int(u)} for u in users]
    excluded = (np.array([o for o, b in enumerate(banned) for _ in b]), np.array([c for b in banned for c in b]))
    owner, cand, score = exact_block(emb, norms, users, excluded, k)
    dots = (emb.astype(np.float64) @ emb.astype(np.float64).T).astype(np.float32)
    for o, u in enumerate(users.tolist()):
        allowed = np.array([c for c in range(n) if c not in banned[o]])
        want = allowed[np.lexsort((allowed, -dots[u, allowed]))][:k]
        assert cand[owner == o].tolist() == want.tolist()
        assert score[owner == o].tobytes() == dots[u, want].tobytes()
