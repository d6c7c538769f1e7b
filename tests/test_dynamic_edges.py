"""KONECT's dynamic lists (`% asym dynamic`): a row of weight +1 adds its tie, -1 removes it. Ingestion and
the initial load keep the ties left standing; the evaluation reads each tie from its first addition. A bipartite
list is refused."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from graph.coded_edges import standing_rows
from graph.edge_reader import EdgeRow
from graph.readers import RowError
from tests.edge_files import edges_of

HEAD = "% asym dynamic\n% 6 3 3\n"
#        a-b added, b-c added, a-b removed, a-c added, a-b added again, a-c removed, c-b removed (either way round)
ROWS = [("a", "b", 1, 100), ("b", "c", 1, 110), ("a", "b", -1, 120), ("a", "c", 1, 130), ("b", "a", 1, 140),
        ("a", "c", -1, 150), ("c", "b", -1, 160)]


def _text(rows, timed: bool = True) -> str:
    return HEAD + "".join(f"{a} {b} {w}" + (f" {t}" if timed else "") + "\n" for a, b, w, t in rows)


def _reference(rows) -> dict[tuple[str, str], float]:
    """Rows applied one by one as a store applies them: an addition keeps the earliest time of a standing tie."""
    ties: dict[tuple[str, str], float] = {}
    for a, b, w, t in rows:
        pair = (min(a, b), max(a, b))
        if w < 0:
            ties.pop(pair, None)
        else:
            ties[pair] = min(ties.get(pair, math.inf), t)
    return ties


@pytest.mark.parametrize("chunk", [None, 64])
def test_a_dynamic_lists_weight_says_whether_the_row_adds_or_removes_its_tie(tmp_path, chunk):
    rows = edges_of(tmp_path, _text(ROWS * 5), chunk)   # blocks too: a dynamic list is read a row at a time
    assert rows[:3] == [EdgeRow(3, "a", "b", 100.0), EdgeRow(4, "b", "c", 110.0),
                        EdgeRow(5, "a", "b", 120.0, removed=True)]
    assert [r.removed for r in rows] == [w < 0 for *_, w, _ in ROWS] * 5
    untimed = edges_of(tmp_path, _text(ROWS, timed=False), chunk)   # `src dst weight`: no time
    assert untimed[2] == EdgeRow(5, "a", "b", None, removed=True) and len(untimed) == len(ROWS)
    assert edges_of(tmp_path, "% sym signed\na b -1 100\n") == [EdgeRow(2, "a", "b", 100.0)]   # a sign, a tie


def test_a_dynamic_list_is_read_in_blocks_with_its_removals(tmp_path):
    from graph.edge_reader import EdgeBlock, read_edge_blocks
    from graph.readers import ByteCounter

    path = tmp_path / "dynamic.txt"
    path.write_text(_text(ROWS * 40))
    items = list(read_edge_blocks(ByteCounter(path), 200))
    blocks = [x for x in items if isinstance(x, EdgeBlock)]
    assert sum(map(len, blocks)) > 200 and all(x.removed is not None for x in blocks)
    rows = [r for x in items for r in (x.rows() if isinstance(x, EdgeBlock) else [x])]
    assert [r.removed for r in rows] == [w < 0 for *_, w, _ in ROWS] * 40


def test_a_dynamic_row_without_a_signed_weight_is_a_bad_row(tmp_path):
    rows = edges_of(tmp_path, HEAD + "a b 1 100\na b 0 110\na b x 120\n")
    assert rows[0] == EdgeRow(3, "a", "b", 100.0)
    assert all(isinstance(r, RowError) and "+1 (tie added) or -1 (tie removed)" in str(r) for r in rows[1:])
    assert [r.line for r in rows[1:]] == [4, 5]


def test_standing_rows_keep_the_additions_after_each_pairs_last_removal():
    src, dst = np.array([0, 1, 0, 0, 1, 0, 2]), np.array([1, 2, 1, 2, 0, 2, 1])
    removed = np.array([False, False, True, False, False, True, True])
    assert standing_rows(src, dst, removed).tolist() == [False, False, False, False, True, False, False]
    assert standing_rows(src[:0], dst[:0], removed[:0]).tolist() == []


def _random_rows(seed: int, n: int = 400):
    rng = random.Random(seed)
    return [(str(rng.randrange(12)), str(12 + rng.randrange(8)), rng.choice((1, 1, -1)), 1_300_000_000 + i)
            for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_snapshot_and_the_initial_load_hold_the_ties_left_standing(tmp_path, seed):
    from graph.bulkload import InitialLoadReport, _Ids, _read_edges
    from graph.snapshot import from_edge_list

    rows = _random_rows(seed)
    expected = _reference(rows)
    path = tmp_path / "dynamic.txt"
    path.write_text(_text(rows))
    snap = from_edge_list(path)
    src, dst, since = snap.ties()
    got = {tuple(sorted((snap.id_strings[s], snap.id_strings[d]))): t
           for s, d, t in zip(src.tolist(), dst.tolist(), np.asarray(since).tolist(), strict=True)}
    assert got == expected and 0 < len(expected) < 96

    halves = [tmp_path / "first.txt", tmp_path / "second.txt"]   # a removal in the second file ends a first's tie
    halves[0].write_text(_text(rows[:200]))
    halves[1].write_text(_text(rows[200:]))
    ids = _Ids()
    src, dst, since = _read_edges(halves, ids, InitialLoadReport(), progress=False)
    name = {i: uid for uid, i in ids.index.items()}
    assert {(name[s], name[d]): t for s, d, t in zip(src.tolist(), dst.tolist(), since.tolist(), strict=True)} \
        == expected


def test_the_evaluation_reads_each_tie_from_its_first_addition(tmp_path):
    from evaluation.edgelist import read_ties

    path = tmp_path / "dynamic.txt"
    path.write_text(_text(ROWS))
    edges = read_ties(path)
    got = {(edges.names[s], edges.names[d]): t
           for s, d, t in zip(edges.src.tolist(), edges.dst.tolist(), edges.ts.tolist(), strict=True)}
    assert got == {("a", "b"): 100.0, ("b", "c"): 110.0, ("a", "c"): 130.0}
    assert edges.said is None   # a tie added again is no message


def test_ingesting_a_dynamic_list_ends_the_removed_ties_and_can_be_rerun(store, prefix, tmp_path):
    rows = [(prefix + a, prefix + b, w, t) for a, b, w, t in _random_rows(2, 120)]
    path = tmp_path / "dynamic.txt"
    path.write_text(_text(rows))
    users = sorted({r[0] for r in rows} | {r[1] for r in rows})
    expected = sorted(_reference(rows))
    for batch_size in (7, 1_000):   # a removal inside a batch, between batches; the second run changes nothing
        from graph.ingest import ingest_edges

        report = ingest_edges(store, path, batch_size=batch_size, progress=False)
        assert (report.loaded, report.rejected) == (len(rows), 0)
        assert f"{sum(r[2] < 0 for r in rows)} rows removed a tie" in report.summary()
        got = sorted({tuple(sorted((u, f))) for u in users for f in store.friends(u)})
        assert got == expected


def test_a_konect_bipartite_list_is_refused_with_its_line(tmp_path):
    from pymk.errors import InputFormatError

    with pytest.raises(InputFormatError, match=r"edges.txt:1: '% bip unweighted' marks a KONECT bipartite list"):
        edges_of(tmp_path, "% bip unweighted\n1 1\n1 2\n")
