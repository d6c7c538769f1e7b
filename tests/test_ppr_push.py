"""The compiled PageRank push (candidates/push.py) against the vectorized rounds it replaced."""

from __future__ import annotations

import threading

import networkx as nx
import numpy as np
import pytest

from candidates.ppr import forward_push_block
from graph.snapshot import from_pairs
from graph.snapshot.csr import pair_keys, row_positions, thread_scratch
from tests.splitmix_reference import splitmix


def rounds_reference(indptr, indices, degree, sources, alpha, eps, max_rounds):
    """The numpy rounds (all sources keyed together, np.unique + bincount per round): the oracle."""
    sources = np.asarray(sources, dtype=np.int64)
    n = np.int64(indptr.size - 1)
    alone = degree[sources] == 0
    p_keys = [pair_keys(np.flatnonzero(alone), sources[alone], n)]
    p_vals = [np.ones(int(alone.sum()))]
    r_keys = pair_keys(np.flatnonzero(~alone), sources[~alone], n)
    r_vals = np.ones(r_keys.size)
    for _ in range(max_rounds):
        r_nodes = r_keys % n
        active = r_vals >= eps * degree[r_nodes]
        if not active.any():
            break
        push_keys, push_nodes, push_vals = r_keys[active], r_nodes[active], r_vals[active]
        p_keys.append(push_keys)
        p_vals.append(alpha * push_vals)
        share = (1 - alpha) * push_vals / degree[push_nodes]
        offsets, _ = row_positions(indptr, push_nodes)
        lens = degree[push_nodes]
        targets = np.concatenate([np.repeat(push_keys - push_nodes, lens) + indices[offsets], r_keys[~active]])
        mass = np.concatenate([np.repeat(share, lens), r_vals[~active]])
        r_keys, inv = np.unique(targets, return_inverse=True)
        r_vals = np.bincount(inv, weights=mass, minlength=r_keys.size)
    keys, inv = np.unique(np.concatenate(p_keys), return_inverse=True)
    return keys // n, keys % n, np.bincount(inv, weights=np.concatenate(p_vals), minlength=keys.size)


def random_graph(seed: int):
    g = nx.powerlaw_cluster_graph(300, 3, 0.3, seed=seed)
    pairs = [(str(a), str(b)) for a, b in g.edges] + [("iso", "iso")]   # one user without friends
    return from_pairs([a for a, _ in pairs], [b for _, b in pairs])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps,max_rounds", [(1e-3, 200), (1e-5, 200), (1e-6, 4)])
def test_push_is_bit_identical_to_the_vectorized_rounds(seed, eps, max_rounds):
    snap = random_graph(seed)
    rng = np.random.default_rng(seed)
    sources = np.concatenate([rng.integers(0, snap.num_users, 20), [snap.index_of("iso"), 5, 5]])
    got = forward_push_block(snap.indptr, snap.indices, snap.degree, sources, 0.15, eps, max_rounds, reach=0)
    want = rounds_reference(snap.indptr, snap.indices, snap.degree, sources, 0.15, eps, max_rounds)
    for g, w in zip(got, want, strict=True):
        assert g.dtype.kind == w.dtype.kind
        np.testing.assert_array_equal(g, w)   # exact: same summation order
    st, mark = thread_scratch(snap.num_users, 3)
    assert not st.any() and not mark.any()    # the scratch is left zeroed for the next call


def test_push_from_many_threads_matches_serial():
    snap = random_graph(3)
    sources = list(range(0, snap.num_users, 7))
    want = {s: forward_push_block(snap.indptr, snap.indices, snap.degree, [s], 0.15, 1e-5) for s in sources}
    got, errors = {}, []

    def work(part):
        try:
            for s in part:
                got[s] = forward_push_block(snap.indptr, snap.indices, snap.degree, [s], 0.15, 1e-5)
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sources[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in sources:
        for g, w in zip(got[s], want[s], strict=True):
            np.testing.assert_array_equal(g, w)


def test_push_rejects_a_source_outside_the_graph_and_handles_an_empty_block():
    snap = random_graph(0)
    with pytest.raises(IndexError, match=str(snap.num_users)):
        forward_push_block(snap.indptr, snap.indices, snap.degree, [snap.num_users])
    owner, nodes, values = forward_push_block(snap.indptr, snap.indices, snap.degree, [])
    assert owner.size == nodes.size == values.size == 0


def top_reference(snap, users, owner, nodes, values, k):
    """Every row sorted (the code before the contenders' cut): the oracle of `top_excluding_friends`. Equal
    values go by the splitmix64 hash of the pair key (viewer * n + node), here in Python integers."""
    from graph.snapshot.csr import is_neighbour, rank_in_group

    rows = np.flatnonzero((nodes != users[owner]) & ~is_neighbour(snap.indptr, snap.indices, users, owner, nodes))
    ties = np.array([splitmix(int(users[owner[r]]) * snap.num_users + int(nodes[r])) for r in rows], dtype=np.uint64)
    rows = rows[np.lexsort((ties, -values[rows], owner[rows]))]
    return rows[rank_in_group(owner[rows]) < k]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 20, 400])
@pytest.mark.parametrize("ties", [True, False])
def test_the_top_k_sorts_only_its_contenders_and_is_the_full_sorts(seed, k, ties):
    """Values with heavy ties (a few distinct ones: the cut's threshold falls inside a run of equal values) or
    none, owners with many rows or few, the viewer and its friends among the best rows, owners in any order."""
    from candidates.ppr import top_excluding_friends
    from graph.snapshot.csr import is_neighbour

    snap = random_graph(seed)
    rng = np.random.default_rng(seed)
    users = rng.choice(snap.num_users, 12, replace=False)
    sizes = rng.choice([0, 3, 40, 299], users.size)

    def drawn(user: int, size: int) -> np.ndarray:   # half the owners hold all their friends and themselves
        got = rng.choice(snap.num_users, size, replace=False)
        if size and rng.random() < 0.5:
            got = np.union1d(got, np.append(snap.neighbors(user), user))
        return np.sort(got)

    picked = [drawn(int(u), s) for u, s in zip(users, sizes, strict=True)]
    owner = np.repeat(np.arange(users.size), [p.size for p in picked])
    nodes = np.concatenate(picked).astype(np.int64)
    values = (rng.choice([0.5, 0.25, 0.125, 0.01], nodes.size) * rng.choice([1.0, 1.0, 1.0 + 1e-12], nodes.size)
              if ties else rng.random(nodes.size))
    friendly = is_neighbour(snap.indptr, snap.indices, users, owner, nodes) | (nodes == users[owner])
    values[friendly] = 1.0   # the excluded rows rank first: the cut must leave room for them
    for shuffle in (False, True):
        order = rng.permutation(nodes.size) if shuffle else np.arange(nodes.size)
        o, n, v = owner[order], nodes[order], values[order]
        got = top_excluding_friends(snap, users, o, n, v, k, lambda rows: rows.tolist())
        want = top_reference(snap, users, o, n, v, k)
        assert np.array_equal(got.owner, o[want]) and np.array_equal(got.cand, n[want])
        assert np.array_equal(got.score, v[want]) and got.proof(np.arange(want.size)) == want.tolist()
