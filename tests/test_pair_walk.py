"""The compiled pair walk (ranker/paths.py) against the numpy block code it replaced."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import networkx as nx
import numpy as np
import pytest

from graph.snapshot import from_pairs
from graph.snapshot.csr import thread_scratch
from ranker.graph_at import GraphAt
from ranker.paths import pair_walk, runs
from tests.pair_walk_reference import reference_walk


def _graph(seed: int, unknown_times: float):
    """A clustered power-law graph (hubs, triangles) with tie times, some unknown, and one isolated user."""
    g = nx.powerlaw_cluster_graph(400, 4, 0.4, seed=seed)
    rng = np.random.default_rng(seed)
    src = [str(a) for a, _ in g.edges] + ["iso"]
    dst = [str(b) for _, b in g.edges] + ["iso"]
    ts = rng.random(len(src)) * 100
    ts[rng.random(ts.size) < unknown_times] = np.nan
    return from_pairs(src, dst, ts.tolist()), rng


def _block(snap, rng, viewers: int):
    """Viewers (one isolated, one twice) and their candidates: friends of friends, random users, friends,
    the viewer itself and candidates listed twice, rows not grouped by viewer."""
    n = snap.num_users
    users = np.concatenate([rng.integers(0, n, viewers), [snap.index_of("iso")]])
    users = np.concatenate([users, users[:1]])
    owner, cands = [], []
    for o, v in enumerate(users.tolist()):
        friends = snap.indices[snap.indptr[v]:snap.indptr[v + 1]]
        fof = np.unique(np.concatenate([snap.indices[snap.indptr[f]:snap.indptr[f + 1]] for f in friends] or [[]]))
        mine = np.concatenate([fof[:60], rng.integers(0, n, 20), friends[:3], [v], fof[:2]]).astype(np.int64)
        owner += [o] * mine.size
        cands += mine.tolist()
    shuffle = rng.permutation(len(cands))
    return users, np.array(owner, dtype=np.int64)[shuffle], np.array(cands, dtype=np.int64)[shuffle]


@pytest.mark.parametrize("seed,unknown_times", [(0, 0.0), (1, 0.3), (2, 1.0)])
def test_walk_is_bit_identical_to_the_numpy_block_code(seed, unknown_times):
    snap, rng = _graph(seed, unknown_times)
    at = GraphAt.of(snap, 101.0)
    strength = rng.random(snap.indices.size) * (rng.random(snap.indices.size) < 0.5)  # interactions on half the ties
    users, owner, cands = _block(snap, rng, 12)
    t, tempo = 101.0, 7.5
    walk = pair_walk(snap, at.deg, at.inv_log_deg, strength, users, cands, *runs(owner, users.size))
    newer = walk.path_newer
    recent = np.bincount(walk.path_row, weights=np.where(np.isnan(newer), 1.0, np.exp(-(t - newer) / tempo)),
                         minlength=cands.size)[walk.first_row]
    got = (walk.mutual, walk.aa, walk.ra, recent, walk.viewer_side, walk.cand_side, walk.links, walk.paths3,
           walk.paths3_weighted)
    want = reference_walk(snap, at.deg, strength, users, owner, cands, t, tempo)
    names = ("mutual", "aa", "ra", "recent", "viewer_side", "cand_side", "links", "paths3", "paths3_weighted")
    for name, g, w in zip(names, got, want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=name)   # exact: the same sums in the same order
    assert walk.mutual.max() > 3 and walk.links.max() > 0 and np.isnan(newer).any() == (unknown_times > 0)
    wide, mark = thread_scratch(snap.num_users, 3)
    assert not wide.any() and not mark.any()   # the per-thread scratch is left zeroed


@pytest.mark.parametrize("bitset_friends", [4096, 100])
def test_hub_viewers_whose_friends_span_several_words_match_the_numpy_block_code(bitset_friends):
    """Links among mutual friends are counted over bit sets of the viewer's friends, 64 to a word: hubs
    of 105 to 145 friends (two and three words) against the reference; and by adjacency searches for
    viewers with more friends than bit sets are made for."""
    g = nx.powerlaw_cluster_graph(600, 8, 0.5, seed=4)
    snap = from_pairs([str(a) for a, _ in g.edges], [str(b) for _, b in g.edges], [1.0] * g.number_of_edges())
    at = GraphAt.of(snap, 2.0)
    users = np.argsort(-snap.degree, kind="stable")[:4].astype(np.int64)
    assert snap.degree[users].min() > 64 and snap.degree[users].max() > 128
    owner, cands = [], []
    for o, v in enumerate(users.tolist()):
        friends = snap.indices[snap.indptr[v]:snap.indptr[v + 1]]
        fof = np.unique(np.concatenate([snap.indices[snap.indptr[f]:snap.indptr[f + 1]] for f in friends]))
        mine = np.concatenate([fof[:150], friends[:5], [v]]).astype(np.int64)
        owner += [o] * mine.size
        cands += mine.tolist()
    owner, cands = np.array(owner, dtype=np.int64), np.array(cands, dtype=np.int64)
    walk = pair_walk(snap, at.deg, at.inv_log_deg, at.strength, users, cands, *runs(owner, users.size),
                     bitset_friends=bitset_friends)
    want = reference_walk(snap, at.deg, at.strength, users, owner, cands, 2.0, 1.0)
    np.testing.assert_array_equal(walk.links, want[6])
    np.testing.assert_array_equal(walk.mutual, want[0])
    assert walk.links.max() > 100


def test_a_viewer_s_rows_do_not_depend_on_its_block_or_on_other_threads():
    snap, rng = _graph(3, 0.2)
    at = GraphAt.of(snap, 101.0)
    users, owner, cands = _block(snap, rng, 30)

    def alone(o: int) -> np.ndarray:
        rows = np.flatnonzero(owner == o)
        w = pair_walk(snap, at.deg, at.inv_log_deg, at.strength, users[o:o + 1], cands[rows],
                      *runs(np.zeros(rows.size, np.int64), 1))
        return np.stack([w.mutual, w.aa, w.links, w.paths3, w.paths3_weighted])

    block = pair_walk(snap, at.deg, at.inv_log_deg, at.strength, users, cands, *runs(owner, users.size))
    together = np.stack([block.mutual, block.aa, block.links, block.paths3, block.paths3_weighted])
    with ThreadPoolExecutor(max_workers=4) as pool:
        each = list(pool.map(alone, list(range(users.size)) * 3))
    for o in range(users.size):
        np.testing.assert_array_equal(each[o], together[:, owner == o])
        np.testing.assert_array_equal(each[o + users.size], each[o])


def test_known_answers_on_two_triangles_joined_by_a_bridge():
    # a-b-c triangle, c-d bridge, d-e-f triangle, and g closing a diamond with b and c
    snap = from_pairs(list("abccdebc"), list("bcadefgg"))
    at = GraphAt.of(snap, 1.0)
    a, d, e, g = (snap.index_of(x) for x in "adeg")
    w = pair_walk(snap, at.deg, at.inv_log_deg, at.strength, np.array([a]), np.array([d, e, g]),
                  *runs(np.zeros(3, np.int64), 1))
    assert w.mutual.tolist() == [1.0, 0.0, 2.0]   # d through c; g through b and c
    assert w.links.tolist() == [0.0, 0.0, 1.0]    # b and c are friends
    assert w.aa.tolist() == pytest.approx([1 / np.log(4), 0.0, 1 / np.log(3) + 1 / np.log(4)])
    assert w.ra.tolist() == pytest.approx([1 / 4, 0.0, 1 / 3 + 1 / 4])
    adj = nx.to_numpy_array(nx.Graph(zip("abccdebc", "bcadefgg", strict=True)), nodelist=list(snap.ids))
    assert w.paths3.tolist() == np.linalg.matrix_power(adj, 3)[a, [d, e, g]].tolist()
