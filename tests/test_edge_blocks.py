"""The edge-list reader's fast path (graph/edge_blocks.py): whole blocks of plain lines parsed at once must
give exactly the rows and errors, in file order, that the line-by-line reader gives."""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import replace

import numpy as np
import pytest

from graph.edge_reader import EdgeBlock, EdgeRow, read_edge_blocks, read_edges
from graph.readers import ByteCounter, RowError
from graph.snapshot import from_edge_list
from graph.timestamps import set_time_window, time_window

LINES = None   # every line alone: the line reader itself

PLAIN = ["{a} {b} {t}", "{a}\t{b}\t{t}", "{a},{b},{t}", " {a}  {b} {t} \r", "{a} {b}", "{a} {b} 3 {t}",
         "{a},{b},-1,{t}.25", "{a} , {b} , {t}", "u{a} v-{b}_x {t}", "{a}\t{b}"]
ODD = ["# comment", "", "% konect", "{a} {a} {t}", "{a} {b} 99999999999999", "{a} {b} -5", "{a} {b} 1e9",
       "{a} {b} 2004-04-15 10:22:33", "x:{a} {b} {t}", '"{a}" {b} {t}', "é{a} {b} {t}", "{a} {b} 3 4 5",
       "{a} {b} nan", "{a} {b} \\N", "{a}\t\t{b}\t{t}", "{a} {b}\t{t}", "{a}", "#{a} {b} {t}", "%{a} {b}",
       "{long} {b} {t}", "{a}\x01 {b} {t}", "{a} {b} 1_500_000_000", "{a},,{b}", "{a};{b} {t}",
       "{a} {b} \u0661\u0663\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660"]


def _file(tmp_path, lines: list[str], head: str = "", compress: bool = False):
    data = (head + "".join(line + "\n" for line in lines)).encode()
    path = tmp_path / "edges.txt"
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _lines(rng: random.Random, n: int, odd_share: float) -> list[str]:
    out = []
    for _ in range(n):
        form = rng.choice(ODD if rng.random() < odd_share else PLAIN)
        a, b = rng.randrange(50), rng.randrange(50, 100)
        out.append(form.format(a=a, b=b, t=1_300_000_000 + rng.randrange(10**8), long="z" * 300))
    return out


def _both(path, chunk: int) -> tuple[list, list]:
    return list(read_edges(ByteCounter(path), LINES)), list(read_edges(ByteCounter(path), chunk))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("head", ["", "src,dst,ts\n", "ts dst src\n", "5\n", "\ufeff1 2 1400000000\n",
                                  "from to\n", "alice bob\n", "# FromNodeId\tToNodeId\tSign\n",
                                  "# UnixTime FromNodeId ToNodeId\n", "% sym weighted\n% 9 9 9\n",
                                  "%%MatrixMarket matrix coordinate real general\n99 99 400\n", "7 8 1400000000 RT\n",
                                  "% asym dynamic\n"])
def test_blocks_give_the_line_readers_rows_and_errors_in_order(tmp_path, seed, head):
    rng = random.Random(seed)
    path = _file(tmp_path, _lines(rng, 400, odd_share=rng.choice([0.0, 0.02, 0.3])), head)
    slow, fast = _both(path, rng.choice([40, 150, 700]))
    assert fast == slow


@pytest.mark.parametrize("form", PLAIN)
def test_every_plain_form_is_read_in_blocks(tmp_path, form):
    rng = random.Random(1)
    path = _file(tmp_path, [form.format(a=rng.randrange(50), b=rng.randrange(50, 100), t=1_400_000_000 + i)
                            for i in range(200)])
    items = list(read_edge_blocks(ByteCounter(path), 100))
    first_chunk = next(ByteCounter(path).chunks(100))[1].count(b"\n")   # read line by line
    assert all(isinstance(x, EdgeBlock) or x.line <= first_chunk for x in items)
    assert [r for x in items for r in (x.rows() if isinstance(x, EdgeBlock) else [x])] == \
        list(read_edges(ByteCounter(path), LINES))


def test_plain_lines_are_read_as_blocks(tmp_path):
    """A clean SNAP list is read almost wholly in blocks (and a bad row sends only its chunk the long way)."""
    lines = [f"{i} {i + 1} {1_300_000_000 + i}" for i in range(2_000)]
    lines[1_500] = "7 7 1300000000"   # a self-loop
    path = _file(tmp_path, lines)
    items = list(read_edge_blocks(ByteCounter(path), 1_000))
    blocks = [x for x in items if isinstance(x, EdgeBlock)]
    assert sum(map(len, blocks)) > 1_800
    assert [x.line for x in items if isinstance(x, RowError)] == [1_501]
    rows = list(read_edges(ByteCounter(path), 1_000))
    assert rows[3] == EdgeRow(4, "3", "4", 1_300_000_003.0) and len(rows) == 2_000
    assert rows == list(read_edges(ByteCounter(path), LINES))


def test_blocks_of_a_compressed_list_and_progress(tmp_path):
    path = _file(tmp_path, _lines(random.Random(7), 3_000, 0.01), compress=True)
    source = ByteCounter(path)
    slow, fast = list(read_edges(ByteCounter(path), LINES)), list(read_edges(source, 500))
    assert fast == slow and source.bytes_read == path.stat().st_size


def test_blocks_read_times_in_the_configured_unit(tmp_path):
    """Epoch milliseconds (PYMK_TIME_UNIT=ms): a block's times are scaled and checked as the line reader's."""
    lines = [f"{i} {i + 1} {1_300_000_000_000 + i}" for i in range(300)] + ["1 2 99999999999999999"]
    path = _file(tmp_path, lines)
    window = time_window()
    set_time_window(replace(window, unit_s=0.001))
    try:
        slow, fast = _both(path, 200)
    finally:
        set_time_window(window)
    assert fast == slow and isinstance(fast[-1], RowError) and fast[0].ts == pytest.approx(1_300_000_000.0)


def test_a_line_longer_than_a_chunk(tmp_path):
    lines = [f"{i} {i + 1}" for i in range(100)] + ["a " + "b" * 5_000] + [f"{i} {i + 2}" for i in range(100)]
    slow, fast = _both(_file(tmp_path, lines), 64)
    assert fast == slow and sum(isinstance(x, RowError) for x in fast) == 1   # the 5,000-character id


def test_the_snapshot_from_blocks_is_the_one_from_lines(tmp_path, monkeypatch):
    path = _file(tmp_path, _lines(random.Random(3), 3_000, 0.05))
    slow = from_edge_list(path)
    monkeypatch.setattr(read_edge_blocks, "__defaults__", (300,))
    fast = from_edge_list(path)
    assert fast.meta["rejected_rows"] == slow.meta["rejected_rows"] > 0
    for name in ("ids", "indptr", "indices"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name))
    assert np.array_equal(fast.since, slow.since, equal_nan=True)


def test_the_initial_loads_pairs_from_blocks_are_those_from_lines(tmp_path, monkeypatch):
    from graph.bulkload import InitialLoadReport, _Ids, _read_edges

    path = _file(tmp_path, _lines(random.Random(5), 3_000, 0.05))

    def load(chunk: int | None):
        monkeypatch.setattr(read_edge_blocks, "__defaults__", (chunk,))
        ids, report = _Ids(), InitialLoadReport()
        pairs = _read_edges([path], ids, report, progress=False)
        return pairs, list(ids.index.items()), (report.rows_read, report.edge_rows, report.rejected)

    (slow, slow_ids, slow_counts), (fast, fast_ids, fast_counts) = load(None), load(300)
    assert fast_ids == slow_ids and fast_counts == slow_counts and slow_counts[2] > 0
    for x, y in zip(fast, slow, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_chunks_cut_lines_as_iterating_the_file_does(tmp_path, size):
    from graph.textfile import _decode, chunk_lines

    data = b"\xef\xbb\xbfa b\r\n\n\nc d\xff\n" + b"e" * 200 + b" f\r\r\nlast line without a break"
    path = tmp_path / "lines.txt"
    path.write_bytes(data)
    with open(path, "rb") as f:
        expected = [(n, _decode(raw, n)) for n, raw in enumerate(f, start=1)]
    source = ByteCounter(path)
    got = [line for number, chunk in source.chunks(size) for line in chunk_lines(number, chunk)]
    assert got == expected and list(ByteCounter(path).lines()) == expected
    assert source.bytes_read == len(data) and expected[0][1] == "a b" and expected[3][1] is None


def test_blocks_without_a_time_column_give_unknown_times(tmp_path, monkeypatch):
    """Lines of two fields (no time): the snapshot, the evaluation's ties and the initial load read NaN."""
    from evaluation.edgelist import read_ties
    from graph.bulkload import InitialLoadReport, _Ids, _read_edges

    path = _file(tmp_path, [f"{i % 97}\t{100 + i % 89}" for i in range(2_000)])

    def read(chunk: int | None):
        monkeypatch.setattr(read_edge_blocks, "__defaults__", (chunk,))
        items = list(read_edge_blocks(ByteCounter(path)))
        pairs = _read_edges([path], _Ids(), InitialLoadReport(), progress=False)
        return items, from_edge_list(path).since, read_ties(path), pairs

    (_, slow_since, slow_ties, slow_pairs), (items, since, ties, pairs) = read(None), read(500)
    assert sum(isinstance(x, EdgeBlock) and x.ts is None for x in items) > 10
    assert np.isnan(since).all() and np.array_equal(since, slow_since, equal_nan=True)
    assert ties.named(ties.src) == slow_ties.named(slow_ties.src) and np.isnan(pairs[2]).all()
    assert ties.named(ties.dst) == slow_ties.named(slow_ties.dst)
    assert np.array_equal(ties.ts, slow_ties.ts, equal_nan=True)
    for x, y in zip(pairs, slow_pairs, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def test_the_initial_loads_pairs_are_each_pairs_earliest_tie_in_id_order(tmp_path):
    """Against a row-by-row reference: two files, integer ids and then others (the codes switch to strings
    mid-file), each pair in both directions, some rows without a time, a bad row; importer ids name users
    already numbered by the users file first."""
    from graph.bulkload import InitialLoadReport, _Ids, _read_edges

    rng = random.Random(11)
    ids = [str(i) for i in range(60)] + ["10a", "z", "Ä", "007"]   # "007" < "10" < "10a" < "9" < "z" < "Ä" as str
    files = []
    for f in range(2):
        lines = []
        for i in range(1_500):
            a, b = rng.sample(ids[:60] if f == 0 and i < 900 else ids, 2)
            lines.append(f"{a} {b}" + ("" if rng.random() < 0.1 else f" {1_300_000_000 + rng.randrange(10**6)}"))
        lines[700] = "5 5 1300000000"   # a self-loop: refused
        files.append(tmp_path / f"edges{f}.txt")
        files[-1].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    known = _Ids()
    known("z"), known("3")   # from the users file
    report = InitialLoadReport()
    src, dst, since = _read_edges(files, known, report, progress=False)
    expected: dict[tuple[str, str], float] = {}
    for path in files:
        for row in read_edges(ByteCounter(path), LINES):
            if isinstance(row, EdgeRow):
                pair = (min(row.src, row.dst), max(row.src, row.dst))
                t = math.inf if row.ts is None else row.ts
                expected[pair] = min(expected.get(pair, math.inf), t)
    name = {i: uid for uid, i in known.index.items()}
    got = {(name[s], name[d]): (math.inf if t != t else t)
           for s, d, t in zip(src.tolist(), dst.tolist(), since.tolist(), strict=True)}
    assert len(got) == src.size and got == expected
    assert known.index["z"] == 0 and known.index["3"] == 1
    assert report.rejected == 2 and report.edge_rows == 2 * 1_499 and report.rows_read == 3_000
