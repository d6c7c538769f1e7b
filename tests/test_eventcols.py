"""The snapshot's event columns read in bulk (graph/eventcols.py): the same table as the event-at-a-time
reading always made, and a window that leaves old segments unread."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from graph.eventcols import STATS_FILE, read_columns
from graph.eventlog import EventLog
from graph.records import Event
from graph.snapshot.export import _event_table
from graph.snapshot.format import EVENT_TYPES
from tests.events_reference import event_table_reference


def _random_log(root, rng: np.random.Generator, segments: int = 4, per: int = 400) -> EventLog:
    log = EventLog(root)
    for s in range(segments):
        with log.segment_writer(f"seg{s}") as write:
            evs = []
            for _ in range(per):
                kind = str(rng.choice(EVENT_TYPES))
                # few distinct times and users: many exact repeats, across segments too
                position = int(rng.integers(0, 3)) if kind == "impression" else None
                evs.append(Event(kind, f"u{rng.integers(0, 30)}", f"u{rng.integers(0, 30)}",
                                 float(rng.integers(0, 40)) / 2, position,
                                 {"request_id": f"r{rng.integers(0, 5)}"} if rng.random() < 0.3 else {}))
            write(evs)
    return log


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_table_is_the_one_the_event_at_a_time_export_made(tmp_path, seed):
    rng = np.random.default_rng(seed)
    log = _random_log(tmp_path, rng)
    ids = np.array([f"u{i}" for i in range(25)])   # u25-u29 are not in the snapshot: their events are dropped
    got, want = _event_table(ids, read_columns(log)), event_table_reference(ids, log.read())
    assert want["src"].size > 100 and want["src"].size < 1600   # repeats and strangers were there to drop
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name


def test_lines_arrow_refuses_are_read_one_at_a_time_like_the_event_reader(tmp_path, caplog):
    log = EventLog(tmp_path)
    tmp_path.joinpath("odd.jsonl").write_text(
        '{"type":"send","src":"u1","dst":"u2","ts":5}\n'        # an integer time
        '{"type":"send","src":7,"dst":"u2","ts":6.0}\n'         # a number for an id
        '\n'
        '{"type":"accept","src":"u2","dst":"u1"\n'              # a torn line
        '[1, 2]\n'
        '{"type":"teleport","src":"u1","dst":"u2","ts":7.0}\n'  # an unknown type
        '{"type":"impression","src":"u1","dst":"7","ts":8.0,"position":2,"extra":{"x":1}}\n')
    ids = np.array(["u1", "u2", "7"])
    with caplog.at_level(logging.WARNING):
        got = _event_table(ids, read_columns(log))
    want = event_table_reference(ids, log.read())
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    assert got["ts"].tolist() == [5.0, 6.0, 8.0] and got["src"].tolist() == [0, 2, 0]
    assert "odd.jsonl:4: skipping unreadable event log line" in caplog.text
    assert "skipping 1 events of unknown types" in caplog.text


def test_an_empty_log_is_an_empty_table(tmp_path):
    got = _event_table(np.array(["u1"]), read_columns(EventLog(tmp_path / "none")))
    assert all(v.size == 0 for v in got.values()) and got["type"].dtype == np.int8


def test_a_window_reads_the_recent_days_and_leaves_old_segments_unopened(tmp_path, monkeypatch):
    log = EventLog(tmp_path)
    day = 86_400.0
    for name, first_day in (("a-old", 0), ("b-mid", 10), ("c-new", 20)):
        with log.segment_writer(name) as write:
            write(Event("send", "u1", "u2", (first_day + d) * day) for d in range(5))   # 5 days each
    from graph.eventcols import segment_ranges

    held: dict = {}   # a first windowed read (no cache yet) reads every segment but holds only the window's
    segment_ranges(log, held, window_s=6 * day)
    assert sorted(p.name for p in held) == ["c-new.jsonl"]
    everything = read_columns(log)
    assert everything.num_rows == 15 and (tmp_path / STATS_FILE).exists()

    import graph.eventcols as ec

    opened = []
    real = ec.read_segment
    monkeypatch.setattr(ec, "read_segment", lambda path: opened.append(path.name) or real(path))
    recent = read_columns(log, days=6)   # newest event: day 24; from day 18 on
    assert sorted(recent["ts"].to_pylist()) == [d * day for d in range(20, 25)]
    assert opened == ["c-new.jsonl"]   # the two older segments' ranges came from the cache
    opened.clear()
    recent = read_columns(log, days=12)   # from day 12: the middle segment in part
    assert sorted(recent["ts"].to_pylist()) == [d * day for d in (12, 13, 14, 20, 21, 22, 23, 24)]
    assert opened == ["b-mid.jsonl", "c-new.jsonl"]

    with log.segment_writer("a-old") as write:   # rewritten (as erasure does): its cached range is stale
        write([Event("send", "u1", "u2", 30 * day)])
    opened.clear()
    recent = read_columns(log, days=6)   # newest event: day 30, in the rewritten segment; from day 24 on
    assert sorted(recent["ts"].to_pylist()) == [24 * day, 30 * day]
    assert opened == ["a-old.jsonl", "c-new.jsonl"]   # read once each; b-mid stays unopened


def test_a_cache_that_cannot_be_read_or_written_costs_a_full_read_not_an_error(tmp_path):
    log = EventLog(tmp_path)
    with log.segment_writer("s") as write:
        write([Event("send", "u1", "u2", 1.0)])
    (tmp_path / STATS_FILE).write_text("{not json")
    assert read_columns(log, days=1).num_rows == 1
    (tmp_path / STATS_FILE).unlink()
    (tmp_path / STATS_FILE).mkdir()   # a directory where the cache goes: it cannot be replaced
    assert read_columns(log, days=1).num_rows == 1


def test_expire_deletes_segments_wholly_past_the_cutoff_and_never_one_still_being_written(tmp_path):
    import os

    from graph.eventcols import expire

    log = EventLog(tmp_path)
    for name, times in (("old", [10.0, 20.0]), ("straddling", [20.0, 200.0]), ("new", [300.0]),
                        ("old-but-live", [5.0])):
        with log.segment_writer(name) as write:
            write(Event("send", "u1", "u2", t) for t in times)
    for name in ("old", "straddling", "new"):   # written long ago; "old-but-live" was written just now
        os.utime(tmp_path / f"{name}.jsonl", (1000.0, 1000.0))
    gone = expire(log, older_than=100.0, settle_s=3600.0)
    assert [p.name for p in gone] == ["old.jsonl"]
    assert sorted(p.name for p in log.segments()) == ["new.jsonl", "old-but-live.jsonl", "straddling.jsonl"]
    assert sorted(read_columns(log)["ts"].to_pylist()) == [5.0, 20.0, 200.0, 300.0]
    assert expire(log, older_than=100.0, settle_s=0.0) == [tmp_path / "old-but-live.jsonl"]
