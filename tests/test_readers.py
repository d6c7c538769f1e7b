"""Input parsing: formats of DESIGN.md, bad rows reported with file and line."""

from __future__ import annotations

import pytest

from graph.edge_reader import EdgeRow, read_edges
from graph.event_schema import parse_event
from graph.readers import ByteCounter, RowError, read_events, read_users
from graph.records import UserRecord
from graph.timestamps import parse_timestamp
from pymk.errors import InputFormatError
from tests.edge_files import edges_of


def test_snap_edges_with_comments_and_timestamps(tmp_path):
    rows = edges_of(tmp_path, "# comment\n1 2 100\n2\t3\t200\n\n3,4\n")
    assert rows == [EdgeRow(2, "1", "2", 100.0), EdgeRow(3, "2", "3", 200.0), EdgeRow(5, "3", "4", None)]


def test_headerless_four_fields_are_src_dst_weight_ts(tmp_path):
    """SNAP's signed networks (Bitcoin OTC as SNAP ships it) and KONECT's timed lists: the weight is skipped."""
    rows = edges_of(tmp_path, "6,2,4,1289241911.72836\n% konect comment\n7 8 -10 1300000000\n")
    assert rows == [EdgeRow(1, "6", "2", 1289241911.72836), EdgeRow(3, "7", "8", 1300000000.0)]


def test_a_null_time_is_a_tie_of_unknown_time(tmp_path):
    """SQL's \\N (a dump of links older than a crawl's clock), NULL, NA or an empty time column: the tie
    stays, without a time; `nan` is still a bad timestamp."""
    rows = edges_of(tmp_path, "1 2 \\N\n3 4 NULL\n5 6 1300000000\n7 8 nan\n")
    assert rows[:3] == [EdgeRow(1, "1", "2", None), EdgeRow(2, "3", "4", None), EdgeRow(3, "5", "6", 1300000000.0)]
    assert isinstance(rows[3], RowError)
    assert edges_of(tmp_path, "src,dst,ts\n1,2,\n") == [EdgeRow(2, "1", "2", None)]


def test_tab_separated_fields_may_hold_spaces_and_commas(tmp_path):
    rows = edges_of(tmp_path, "SOURCE\tTARGET\tPOST_ID\tTIMESTAMP\tPROPERTIES\n"
                            "a\tb\tp1\t2013-12-31 16:39:58\t0.1,0.2\nc\t\tp2\t2014-01-01 00:00:00\t\n")
    assert rows[0] == EdgeRow(2, "a", "b", 1388507998.0)
    assert isinstance(rows[1], RowError) and rows[1].line == 3   # an empty dst stays in its column


def test_quoted_csv_fields_are_read_as_csv_quotes_them(tmp_path):
    """Every field quoted (as many exporters write), a quoted id holding the separator, and a quoted
    header; before, the quotes stayed in the values and no time could be read."""
    rows = edges_of(tmp_path, '"source","target","time"\n"a","b","2004-04-15 10:22:33"\n"c, jr","d","1082113200"\n')
    assert rows == [EdgeRow(2, "a", "b", 1082024553.0), EdgeRow(3, "c, jr", "d", 1082113200.0)]
    assert edges_of(tmp_path, '"a b" c 1500\n') == [EdgeRow(1, "a b", "c", 1500.0)]   # whitespace-separated


def test_a_whitespace_separated_date_and_clock_time_are_one_time(tmp_path):
    rows = edges_of(tmp_path, "a b 2004-04-15 10:22:33\nc d 1 2004-04-16 11:00\ne f 2004-04-17 09:00:00+02:00\n")
    assert rows == [EdgeRow(1, "a", "b", 1082024553.0), EdgeRow(2, "c", "d", 1082113200.0),
                    EdgeRow(3, "e", "f", 1082185200.0)]


def test_empty_csv_fields_keep_the_header_columns(tmp_path):
    assert edges_of(tmp_path, "src,dst,weight,ts\n1,2,,100\n") == [EdgeRow(2, "1", "2", 100.0)]


@pytest.mark.parametrize("compress", ["gzip", "bz2"])
def test_compressed_edge_lists_are_read_whatever_their_name(tmp_path, compress):
    import bz2
    import gzip

    text = b"# SNAP\n" + b"".join(b"%d %d %d\n" % (i, i + 1, 1_000_000 + i) for i in range(10_000))
    p = tmp_path / "edges.txt"   # no .gz suffix: the magic bytes decide
    p.write_bytes(gzip.compress(text) if compress == "gzip" else bz2.compress(text))
    source = ByteCounter(p)
    rows = list(read_edges(source))
    assert len(rows) == 10_000 and rows[-1] == EdgeRow(10_001, "9999", "10000", 1_009_999.0)
    assert source.bytes_read == p.stat().st_size


def test_a_truncated_archive_is_a_named_error(tmp_path):
    import gzip

    p = tmp_path / "edges.txt.gz"
    p.write_bytes(gzip.compress(b"".join(b"%d %d\n" % (i, i + 1) for i in range(10_000)))[:200])
    with pytest.raises(InputFormatError, match=r"edges\.txt\.gz: cannot decompress"):
        list(read_edges(ByteCounter(p)))


def test_node_count_first_line_is_skipped(tmp_path):
    assert edges_of(tmp_path, "4039\n0 1 1\n") == [EdgeRow(2, "0", "1", 1.0)]


def test_bad_edge_rows_report_file_and_line_and_good_rows_survive(tmp_path):
    rows = edges_of(tmp_path, b"1 2\nlonely\n3 4 notatime\n5 5\n6 7\n\xff\xfe 8\n")
    good = [r for r in rows if isinstance(r, EdgeRow)]
    bad = [r for r in rows if isinstance(r, RowError)]
    assert [(r.src, r.dst) for r in good] == [("1", "2"), ("6", "7")]
    assert [r.line for r in bad] == [2, 3, 4, 6]
    assert str(bad[1]).startswith(f"{tmp_path / 'edges.txt'}:3: bad timestamp 'notatime'")
    assert "self-loop" in bad[2].message


def test_an_id_with_a_control_character_or_too_long_is_a_bad_row(tmp_path):
    """A NUL would be dropped from the end of an id by the snapshot's id array (another account's id then),
    one long id would widen every id of the array: refused with its line, wherever ids come in."""
    rows = edges_of(tmp_path, "1 2\nab\x00 3\n4\x01x 5\n6 7\n" + "y" * 100_000 + " 8\n")
    assert [r.line for r in rows if isinstance(r, RowError)] == [2, 3, 5]   # and an id of 100,000 characters
    assert "100,000 characters long" in rows[-1].message
    assert "control character '\\x00'" in next(r for r in rows if isinstance(r, RowError)).message
    p = tmp_path / "users.csv"
    p.write_text('id,city\nu1,Oslo\nu\x1b2,Rome\n')
    got = list(read_users(ByteCounter(p)))
    assert [u.id for u in got if isinstance(u, UserRecord)] == ["u1"]
    assert "control character '\\x1b'" in next(r for r in got if isinstance(r, RowError)).message
    # deletions read ids only: an account made before ids were checked can still be deleted
    p.write_text('id,city,lat\nu1,Oslo,999\nu\x1b2,,\n,,\n')
    got = list(read_users(ByteCounter(p), ids_only=True))
    assert [u.id for u in got if isinstance(u, UserRecord)] == ["u1", "u\x1b2"] and got[2].message == "empty id"


def test_users_csv(tmp_path):
    p = tmp_path / "users.csv"
    p.write_text("id,school,lat,lon,opted_out,created_at,extra\n"
                 "u1,MIT,42.3,-71.0,false,2020-01-01,x\n"
                 "u2,,,,,,\n"
                 "u3,X,95,10,no,,\n"
                 "u4,X,1,,no,,\n"
                 "u5,X,1,2\n"
                 "u6,X,1,2,maybe,,\n")
    rows = list(read_users(ByteCounter(p)))
    u1, u2 = rows[0], rows[1]
    got = (u1.id, u1.school, u1.lat, u1.lon, u1.opted_out, u1.created_at)
    assert got == ("u1", "MIT", 42.3, -71.0, False, 1577836800.0)
    assert (u2.school, u2.lat, u2.opted_out) == (None, None, None)
    errors = rows[2:]
    assert [e.line for e in errors] == [4, 5, 6, 7]
    assert "lat 95.0 outside" in errors[0].message
    assert "together" in errors[1].message
    assert "expected 7 fields" in errors[2].message
    assert "bad boolean 'maybe'" in errors[3].message


def test_users_csv_without_id_column_is_a_format_error(tmp_path):
    p = tmp_path / "users.csv"
    p.write_text("name,city\nana,Oslo\n")
    with pytest.raises(InputFormatError, match="'id' column"):
        list(read_users(ByteCounter(p)))


def test_events_jsonl(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text('{"type":"send","src":"a","dst":"b","ts":5}\n'
                 '{"type":"poke","src":"a","dst":"b","ts":5}\n'
                 'not json\n'
                 '{"type":"impression","src":1,"dst":2,"ts":"2020-01-01T00:00:00","position":3,"policy":"fof"}\n'
                 '{"type":"send","src":"a","dst":"a","ts":5}\n')
    rows = list(read_events(ByteCounter(p)))
    assert rows[0][0] == 1 and rows[0][1].type == "send"
    assert isinstance(rows[1], RowError) and "field 'type'" in rows[1].message and rows[1].line == 2
    assert isinstance(rows[2], RowError) and rows[2].line == 3
    _line, ev = rows[3]
    assert (ev.src, ev.dst, ev.position, ev.extra) == ("1", "2", 3, {"policy": "fof"})
    assert isinstance(rows[4], RowError) and "same user" in rows[4].message


@pytest.mark.parametrize("bad", [{"type": "send", "src": "a", "dst": "b"},
                                 {"type": "send", "src": True, "dst": "b", "ts": 1},
                                 {"type": "send", "src": "a", "dst": "b", "ts": 1, "position": -1},
                                 {"type": "send", "src": "a\x00", "dst": "b", "ts": 1},
                                 ["send"]])
def test_parse_event_names_the_field(bad):
    with pytest.raises(ValueError):
        parse_event(bad)


def test_parse_timestamp():
    assert parse_timestamp("1.5") == 1.5
    assert parse_timestamp("1970-01-01T00:01:00+00:00") == 60.0
    with pytest.raises(ValueError, match="'nan'"):
        parse_timestamp("nan")


def test_implausible_timestamps_and_extra_fields_are_rejected_with_their_line(tmp_path):
    import time

    ahead = time.time() + 2 * 86_400
    rows = edges_of(tmp_path, f"1 2 1e300\n3 4 -7\n5 6 {ahead:.0f}\n13 14 15 16 17\n7 8 100\n9 10 nan\n")
    errors = {r.line: r.message for r in rows if isinstance(r, RowError)}
    assert set(errors) == {1, 2, 3, 4, 6}
    assert [r for r in rows if isinstance(r, EdgeRow)] == [EdgeRow(5, "7", "8", 100.0)]
    assert "outside the accepted window" in errors[1] and "outside the accepted window" in errors[2]
    assert "5 fields" in errors[4] and "bad timestamp" in errors[6]
    assert "milliseconds?" not in errors[1] + errors[2] + errors[3]
    for raw, unit, setting in (("1300000000000", "milliseconds", "ms"), ("1300000000000000", "microseconds", "us"),
                               ("1300000000000000000", "nanoseconds", "ns")):   # a log's finer unit: said so
        fine = edges_of(tmp_path, f"1 2 {raw}\n")[0]
        assert isinstance(fine, RowError) and "outside the accepted window" in fine.message
        assert f"{unit}?" in fine.message and f"PYMK_TIME_UNIT={setting} " in fine.message
    for bad in (1e300, -5, ahead):
        with pytest.raises(ValueError, match="outside the accepted window"):
            parse_event({"type": "send", "src": "a", "dst": "b", "ts": bad})


def test_time_window_is_configurable_and_the_event_log_refuses_outside_it(tmp_path):
    from graph.eventlog import EventLog
    from graph.records import Event
    from graph.timestamps import TimeWindow, set_time_window, time_window

    log = EventLog(tmp_path / "events")
    with pytest.raises(ValueError, match="outside the accepted window"):
        log.append([Event("send", "a", "b", 5.0), Event("send", "a", "c", -1.0)])
    assert list(log.read()) == []  # nothing of the refused batch was written
    old = time_window()
    try:
        set_time_window(TimeWindow(earliest=1_000.0))
        with pytest.raises(ValueError, match="outside the accepted window"):
            parse_timestamp("500")
        assert parse_timestamp("1500") == 1500.0
    finally:
        set_time_window(old)


def test_users_csv_deactivated_column(tmp_path):
    p = tmp_path / "users.csv"
    p.write_text("id,deactivated\nu1,true\nu2,\nu3,nope\n")
    rows = list(read_users(ByteCounter(p)))
    assert rows[0].deactivated is True and not rows[0].suggestable
    assert rows[1].deactivated is None and rows[1].suggestable
    assert isinstance(rows[2], RowError) and rows[2].line == 4


def test_numeric_times_in_milliseconds_with_the_time_unit_setting(tmp_path):
    from graph.edge_reader import read_edges
    from graph.readers import ByteCounter
    from graph.timestamps import TimeWindow, set_time_window, time_window
    from pymk.errors import ConfigError
    from pymk.settings import Settings

    path = tmp_path / "ms.txt"
    path.write_text("a b 1700000000000\nb c 2023-11-14T22:13:20Z\n")
    rows = list(read_edges(ByteCounter(path)))
    assert "PYMK_TIME_UNIT=ms" in str(rows[0]) and rows[1].ts == 1_700_000_000.0   # seconds by default
    settings = Settings.from_env({"PYMK_TIME_UNIT": "ms"})
    assert settings.ts_unit_s == 1e-3
    with pytest.raises(ConfigError, match="PYMK_TIME_UNIT must be one of s, ms, us, ns \\(got 'minutes'\\)"):
        Settings.from_env({"PYMK_TIME_UNIT": "minutes"})
    old = time_window()
    try:
        set_time_window(TimeWindow(unit_s=settings.ts_unit_s))
        assert [r.ts for r in read_edges(ByteCounter(path))] == [1_700_000_000.0, 1_700_000_000.0]  # ISO unchanged
        assert parse_event({"type": "send", "src": "a", "dst": "b", "ts": 1_700_000_000_500}).ts == 1_700_000_000.5
    finally:
        set_time_window(old)
