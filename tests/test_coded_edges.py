"""An edge list read into numbered ids (graph/coded_edges.py), the snapshot built from the codes
(graph/snapshot/build.from_codes) and the evaluation's split built on both: the same rows, snapshots and test
ties as reading every id as a string."""

from __future__ import annotations

import random

import numpy as np
import pytest

from graph.coded_edges import named, read_coded_edges
from graph.edge_reader import EdgeRow, read_edge_blocks, read_edges
from graph.readers import ByteCounter, RowError
from graph.snapshot import from_codes, from_pairs, interaction_table

# ids that are not the canonical decimal form of an int64: from the first of them on, ids go through a dict
NOT_INTEGERS = ["07", "+7", "-3", "a1", "7.0", "123456789012345678901", "9999999999999999999", "0x1f", "١٢"]
# a comment, a self-loop, a bad time, no time (a good row), a blank line, one field
OTHER_LINES = ["# a comment", "{a} {a} 1300000000", "{a} {b} notatime", "{a} {b}", "", "{a}"]


def _lines(rng: random.Random, n: int, switch_at: int | None) -> list[str]:
    out = []
    for i in range(n):
        a, b = rng.randrange(0, 60), rng.randrange(60, 120)
        if rng.random() < 0.1:   # "0" is a canonical integer too
            a = 0
        if switch_at is not None and i >= switch_at and rng.random() < 0.2:
            a = rng.choice(NOT_INTEGERS)
        form = rng.choice(OTHER_LINES) if rng.random() < 0.03 else "{a} {b} {t}"
        out.append(form.format(a=a, b=b, t=1_300_000_000 + rng.randrange(10**7)))
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("chunk", [None, 40, 300, 1 << 20])
def test_codes_name_the_rows_and_errors_the_line_reader_reads(tmp_path, monkeypatch, seed, chunk):
    """Integer ids switched to the dict at any point (a block or a line, after blocks of integers or at the
    start, or never): each row's codes name its ids, one code per id, the bad rows handed over in order."""
    rng = random.Random(seed)
    path = tmp_path / "edges.txt"
    path.write_text("\n".join(_lines(rng, 800, rng.choice([None, 0, 5, 150, 500, 790]))) + "\n")
    expected = list(read_edges(ByteCounter(path), None))
    monkeypatch.setattr(read_edge_blocks, "__defaults__", (chunk,))
    bad: list[RowError] = []
    edges = read_coded_edges(ByteCounter(path), bad.append)
    assert len(set(edges.names)) == len(edges.names)   # each id has one code
    rows = [r for r in expected if isinstance(r, EdgeRow)]
    assert list(zip(named(edges.names, edges.src), named(edges.names, edges.dst), strict=True)) == \
        [(r.src, r.dst) for r in rows]
    assert np.array_equal(edges.ts, [np.nan if r.ts is None else r.ts for r in rows], equal_nan=True)
    assert bad == [r for r in expected if isinstance(r, RowError)]


def test_integer_ids_are_numbered_by_value_and_other_forms_stay_apart(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("0 5\n999999999999999999 5\n5 0\n")
    edges = read_coded_edges(ByteCounter(path), pytest.fail)
    assert edges.names == ["0", "5", "999999999999999999"]   # integers only: by value
    assert edges.src.tolist() == [0, 2, 1] and edges.dst.tolist() == [1, 1, 0]
    path.write_text("0 5\n5 7\n05 7\n+7 5\n")
    edges = read_coded_edges(ByteCounter(path), pytest.fail)
    assert named(edges.names, edges.src) == ["0", "5", "05", "+7"]
    assert named(edges.names, edges.dst) == ["5", "7", "7", "5"] and len(edges.names) == 5


@pytest.mark.parametrize("kind", ["integers", "strings"])
def test_the_snapshot_from_codes_is_the_one_from_the_ids(kind):
    """`from_codes` against `from_pairs` on the same ties (duplicates, self-loops, unknown times), and each
    code's index: the snapshot's, -1 for an id in no tie given."""
    rng = np.random.default_rng(4)
    names = [str(x) for x in rng.permutation(500)] if kind == "integers" else [f"u{x}" for x in range(499)] + ["07"]
    src, dst = rng.integers(0, 400, 3_000), rng.integers(0, 400, 3_000)   # codes 400 on: in no tie
    ts = np.where(rng.random(3_000) < 0.1, np.nan, rng.integers(1_300_000_000, 1_400_000_000, 3_000))
    snap, index = from_codes(names, src, dst, ts)
    expected = from_pairs(named(names, src), named(names, dst), ts)
    assert snap.ids.dtype.kind == ("i" if kind == "integers" else "U")
    for name in ("ids", "indptr", "indices"):
        assert np.array_equal(getattr(snap, name), getattr(expected, name)), name
    assert np.array_equal(snap.since, expected.since, equal_nan=True)
    used = set(src.tolist()) | set(dst.tolist())
    assert [index[c] for c in range(len(names))] == \
        [expected.index_of(names[c]) if c in used else -1 for c in range(len(names))]


def test_the_split_is_the_one_built_from_the_ids(tmp_path):
    """`time_split` builds the training snapshot, its interactions and the test ties from codes; the same
    built from the ties' ids as strings (a message graph: repeated pairs, rows without a time, users new at
    the cut, ids both canonical integers and not)."""
    from evaluation.edgelist import read_ties
    from evaluation.harness import time_split
    from graph.splits import time_split_mask

    rng = random.Random(2)
    lines = []
    for i in range(3_000):
        a, b = rng.randrange(0, 80 + i // 20), rng.randrange(0, 80 + i // 20)
        if a != b:
            t = "" if rng.random() < 0.02 else f" {1_300_000_000 + i * 100}"
            lines.append(f"{a if rng.random() < 0.9 else f'0{a}'} {b}{t}")
    path = tmp_path / "msgs.txt"
    path.write_text("\n".join(lines) + "\n")
    split = time_split(path, train_share=0.7)

    edges = read_ties(path)
    src, dst = edges.named(edges.src), edges.named(edges.dst)
    train, cut = time_split_mask(edges.ts, 0.7)
    keep = np.flatnonzero(train)
    snap = from_pairs([src[i] for i in keep], [dst[i] for i in keep], edges.ts[keep])
    before = np.flatnonzero(edges.said[2] < cut)
    said = interaction_table(snap, [edges.named(edges.said[0])[i] for i in before],
                             [edges.named(edges.said[1])[i] for i in before], edges.said[2][before])
    test: dict[str, set[str]] = {}
    unseen = 0
    for s, d, is_train in zip(src, dst, train, strict=True):
        if is_train:
            continue
        if not (snap.has_user(s) and snap.has_user(d)):
            unseen += 1
            continue
        test.setdefault(s, set()).add(d)
        test.setdefault(d, set()).add(s)

    assert split.cut == cut and split.test == test and split.test_ties_unseen_users == unseen > 0
    assert len(said["ts"]) > len(keep)   # repeated pairs: more interactions than ties
    for name in ("ids", "indptr", "indices"):
        assert np.array_equal(getattr(split.train, name), getattr(snap, name)), name
    assert np.array_equal(split.train.since, snap.since, equal_nan=True)
    for key, value in said.items():
        assert np.array_equal(split.train.events[key], value) and split.train.events[key].dtype == value.dtype, key
