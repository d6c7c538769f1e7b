"""Edge-list headers: columns named by a header line, by SNAP's last comment line, or by position."""

from __future__ import annotations

import pytest

from graph.edge_reader import EdgeRow
from graph.readers import RowError
from tests.edge_files import edges_of


def test_csv_header_maps_columns_in_any_order(tmp_path):
    rows = edges_of(tmp_path, "Source,Target,Rating,Time\n7,9,-3,1500\n")
    assert rows == [EdgeRow(2, "7", "9", 1500.0)]
    rows = edges_of(tmp_path, "ts,dst,src\n2020-01-01T00:00:00Z,b,a\n")
    assert rows == [EdgeRow(2, "a", "b", 1577836800.0)]


@pytest.mark.parametrize("header, expected", [
    ("SOURCE_SUBREDDIT\tTARGET_SUBREDDIT\tPOST_ID\tTIMESTAMP\tLINK_SENTIMENT", (0, 1, 3)),  # SNAP's Reddit links
    ("from_user_id,to_user_id,created_at", (0, 1, 2)),
    ("sender receiver unixtime", (0, 1, 2)),
    ("id,user1,user2,Date (UTC)", (1, 2, 3)),
    ("target,source", (1, 0, None)),
    ("TimeStamp,SourceNodeId,TargetNodeId", (1, 2, 0)),   # camelCase: before, no column matched and the
    ("FromNodeId ToNodeId UnixTime", (0, 1, 2)),          # first was read as the source
    ("SRC TGT UNIXTS", (0, 1, 2)),   # SNAP's temporal networks name their columns so on their pages
    ("u,v,t", (0, 1, 2)),
])
def test_header_names_are_matched_by_their_words(header, expected):
    from graph.edge_columns import header_columns, split_fields

    assert header_columns(split_fields(header, keep_empty=True)) == expected


def test_a_byte_order_mark_is_not_part_of_the_first_id_or_column_name(tmp_path):
    """Spreadsheet exports open the file with a UTF-8 byte-order mark: it stayed in the first id
    ('\\ufeff1', another user than '1'); now it is dropped, and only at the very start."""
    assert edges_of(tmp_path, b"\xef\xbb\xbf1 2 100\r\n2 1 200\r\n") == [EdgeRow(1, "1", "2", 100.0),
                                                                       EdgeRow(2, "2", "1", 200.0)]
    assert edges_of(tmp_path, b"\xef\xbb\xbfts,dst,src\n5,b,a\n") == [EdgeRow(2, "a", "b", 5.0)]


def test_an_unrecognised_header_is_one_named_bad_row(tmp_path):
    """A header the reader cannot map says so on its line; a first row of names that is a valid tie stays."""
    rows = edges_of(tmp_path, "alpha beta gamma delta epsilon\n1 2 100\n")
    assert isinstance(rows[0], RowError) and "names no source and target column" in rows[0].message
    assert rows[1] == EdgeRow(2, "1", "2", 100.0)
    assert edges_of(tmp_path, "src_1 to_2 1500\n") == [EdgeRow(1, "src_1", "to_2", 1500.0)]
    assert edges_of(tmp_path, "alice bob 2020-01-01\nbob carol\n") == [
        EdgeRow(1, "alice", "bob", 1577836800.0), EdgeRow(2, "bob", "carol", None)]


SIGNED = ("# Directed graph (each unordered pair of nodes is saved once): soc-sign-epinions.txt\n"
          "# Epinions signed network\n# Nodes: 131828 Edges: 841372\n# FromNodeId\tToNodeId\tSign\n")


@pytest.mark.parametrize("chunk", [None, 64])
def test_snaps_commented_header_names_the_columns(tmp_path, chunk):
    """SNAP's soc-sign-epinions and soc-sign-Slashdot: `src dst sign`, the names in the last comment line.
    Read by position, the sign was a time: every -1 tie was a bad row (a quarter of the ties lost) and every
    +1 tie was dated 1970-01-01 00:00:01."""
    ties = [(i, i + 1, -1 if i % 4 == 0 else 1) for i in range(40)]
    rows = edges_of(tmp_path, SIGNED + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in ties), chunk)
    assert rows == [EdgeRow(5 + i, str(a), str(b), None) for i, (a, b, _) in enumerate(ties)]


def test_a_commented_header_may_name_the_time(tmp_path):
    assert edges_of(tmp_path, "# UnixTime FromNodeId ToNodeId\n1500000000 a b\n") == [EdgeRow(2, "a", "b", 1.5e9)]


def test_a_commented_header_counts_only_when_it_names_every_field(tmp_path):
    """Two names over three fields, or prose before the counts line: the fields are read by position."""
    assert edges_of(tmp_path, "# FromNodeId\tToNodeId\n1\t2\t1500000000\n") == [EdgeRow(2, "1", "2", 1.5e9)]
    assert edges_of(tmp_path, "# links from users to users\n# Nodes: 3 Edges: 2\n1 2 100\n") == [
        EdgeRow(3, "1", "2", 100.0)]


def test_a_header_line_wins_over_a_commented_one(tmp_path):
    assert edges_of(tmp_path, "# a b c\nts,dst,src\n5,b,a\n") == [EdgeRow(3, "a", "b", 5.0)]


def test_a_comment_after_the_first_tie_names_nothing(tmp_path):
    bad = edges_of(tmp_path, "1 2 100\n# FromNodeId ToNodeId Sign\n3 4 -1\n")[1]
    assert bad.line == 3 and bad.message.startswith("timestamp '-1' is outside the accepted window [0, now + 86400 s]")
    assert "PYMK_EDGE_COLUMNS names them" in bad.message   # read by position: the setting may say otherwise
    assert "PYMK_EDGE_COLUMNS" not in edges_of(tmp_path, "src,dst,ts\n3,4,-1\n")[0].message   # a header said so


@pytest.mark.parametrize("chunk", [None, 64])
def test_a_konect_list_of_three_fields_holds_a_weight_not_a_time(tmp_path, chunk):
    """KONECT's lines are `FROM TO [WEIGHT [TIME]]`: its weighted lists' third field was read as a time (weights
    1-9 as seconds after 1970, a graph of 9 distinct times); its timed lists keep their fourth field's time."""
    lines = "".join(f"{i} {i + 1} {i % 9 + 1}\n" for i in range(30))
    rows = edges_of(tmp_path, "% sym posweighted\n% 30 31 31\n" + lines, chunk)
    assert rows == [EdgeRow(3 + i, str(i), str(i + 1), None) for i in range(30)]
    assert edges_of(tmp_path, "% asym positive\n% 2 3 3\n1 2 1 1300000000\n2 3 1 1300000100\n", chunk) == [
        EdgeRow(3, "1", "2", 1.3e9), EdgeRow(4, "2", "3", 1.3e9 + 100)]
    assert edges_of(tmp_path, "% konect comment\n1 2 100\n", chunk) == [EdgeRow(2, "1", "2", 100.0)]


@pytest.mark.parametrize("chunk", [None, 64])
def test_a_matrix_market_file_skips_its_size_line_and_reads_no_time_from_its_values(tmp_path, chunk):
    """Network Repository's .mtx: the line after the comments counts rows, columns and entries (it was a
    self-loop, a bad row), and a third field is the entry's value."""
    lines = "".join(f"{i} {i + 1} {i % 7 + 1}\n" for i in range(1, 30))
    rows = edges_of(tmp_path, "%%MatrixMarket matrix coordinate integer symmetric\n% a comment\n30 30 29\n" + lines,
                  chunk)
    assert rows == [EdgeRow(4 + i, str(i + 1), str(i + 2), None) for i in range(29)]
    assert edges_of(tmp_path, "%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n2 3\n", chunk) == [
        EdgeRow(3, "1", "2", None), EdgeRow(4, "2", "3", None)]


@pytest.mark.parametrize("chunk", [None, 64])
def test_a_fourth_field_that_is_no_date_leaves_the_time_in_the_third(tmp_path, chunk):
    """SNAP's Higgs Twitter activity, `userA userB timestamp interaction`: read as `src dst weight ts`, every
    line was a bad row ('RT' is no timestamp), and `pymk eval` stopped with no edge read."""
    kinds = ["RT", "MT", "RE"]
    text = "".join(f"{i} {i + 1} {1341100972 + i} {kinds[i % 3]}\n" for i in range(30))
    assert edges_of(tmp_path, text, chunk) == [EdgeRow(1 + i, str(i), str(i + 1), 1341100972.0 + i) for i in range(30)]
    rows = edges_of(tmp_path, "1 2 5 RT\n")   # a third field that is no date (5 s after 1970): the rule stands
    assert isinstance(rows[0], RowError) and "bad timestamp 'RT'" in rows[0].message
    # `src dst ts weight`: the weight read as a time would date every tie 1970 (a date, then a small number)
    assert edges_of(tmp_path, "a b 1300000000 1\nb c 1300000100 3\n", chunk) == [
        EdgeRow(1, "a", "b", 1.3e9), EdgeRow(2, "b", "c", 1.3e9 + 100)]
    assert edges_of(tmp_path, "a b 2 1300000000\n", chunk) == [EdgeRow(1, "a", "b", 1.3e9)]   # weight, then time


@pytest.fixture
def declared():
    from graph.edge_columns import set_declared_columns

    yield set_declared_columns
    set_declared_columns(None)


@pytest.mark.parametrize("chunk", [None, 64])
def test_declared_columns_read_a_file_without_a_header_line(tmp_path, chunk, declared):
    """PYMK_EDGE_COLUMNS, for a layout no line of the file tells: a weighted `src dst weight` list, whose
    weights are read as times (seconds after 1970) by position."""
    weighted = "".join(f"{i} {i + 1} {i % 5 + 0.5}\n" for i in range(30))
    assert edges_of(tmp_path, weighted, chunk)[0] == EdgeRow(1, "0", "1", 0.5)   # by position
    declared(("src", "dst", "weight"))
    assert edges_of(tmp_path, weighted, chunk) == [EdgeRow(1 + i, str(i), str(i + 1), None) for i in range(30)]
    declared(("ts", "src", "dst"))
    assert edges_of(tmp_path, "# FromNodeId ToNodeId UnixTime\n1500000000 a b extra\n", chunk) == [
        EdgeRow(2, "a", "b", 1.5e9)]   # it wins over a commented header, and other fields stay unread
    assert edges_of(tmp_path, "src,dst,ts\nx,y,1500000000\n", chunk) == [EdgeRow(2, "x", "y", 1.5e9)]  # a header wins


def test_the_cli_reads_edge_lists_by_the_edge_columns_setting(tmp_path, declared):
    from click.testing import CliRunner

    from graph.snapshot import load_snapshot
    from pymk.artifacts import ArtifactStore
    from pymk.cli import main

    edges = tmp_path / "weighted.txt"
    edges.write_text("1 2 3\n2 3 7\n")
    result = CliRunner().invoke(main, ["snapshot", "from-edges", str(edges)],
                                env={"PYMK_DATA_DIR": str(tmp_path), "PYMK_EDGE_COLUMNS": "src,dst,weight"})
    assert result.exit_code == 0, result.output
    snap = load_snapshot(ArtifactStore(tmp_path / "snapshots").current())
    assert snap.num_edges == 2 and all(t != t for t in snap.since.tolist())   # no times (NaN), not 3 s and 7 s
