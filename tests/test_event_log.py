"""The event log and the served log: retention, closing, writes that fail (a full disk) without a torn
line, and erasure of deleted accounts' records, incremental, safe beside writers and a second run."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from graph.eventlog import EventLog
from graph.records import Friendship


def test_served_log_retention_deletes_only_old_live_segments(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    old, recent, kept = root / "live-2026010100-h-1.jsonl", root / "live-2026010101-h-2.jsonl", root / "seg.jsonl"
    for path, age_h in ((old, 73), (recent, 71), (kept, 500)):
        path.write_text('{"a": 1}\n')
        os.utime(path, (time.time() - age_h * 3600,) * 2)
    EventLog(root).append_records([{"b": 2}])              # no retention: nothing deleted
    assert old.exists() and recent.exists()
    log = EventLog(root, retention_s=72 * 3600)
    assert log.append_records([{"c": 3}]) == 1             # opening its segment expires the old ones
    assert not old.exists() and recent.exists() and kept.exists()
    assert log.append_records([{"d": 4}]) == 1 and len(list(root.glob("live-*.jsonl"))) == 2  # same segment
    assert [r for r in log.read_records() if "a" not in r] == [{"b": 2}, {"c": 3}, {"d": 4}]


def test_closing_a_log_releases_its_live_segment_and_a_later_append_reopens_it(tmp_path):
    from graph.records import Event

    with EventLog(tmp_path / "log") as log:
        log.append([Event("send", "a", "b", 10.0)])
        handle = log._live[1]
        assert not handle.closed
    assert handle.closed and log._live is None             # the with block closed it
    log.close()                                            # closing twice is harmless
    assert log.append([Event("accept", "b", "a", 11.0)]) == 1
    log.close()
    assert len(log.segments()) == 1 and [(e.type, e.ts) for e in log.read()] == [("send", 10.0), ("accept", 11.0)]


def _disk_fills_after(monkeypatch, keep: int) -> None:
    """The next event-log write puts `keep` bytes on disk, then fails as a full disk does."""
    import errno

    import graph.eventlog

    def full(f, data):
        os.write(f.fileno(), data[:keep])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(graph.eventlog, "_write_all", full)


def test_a_failed_log_write_leaves_no_torn_line(tmp_path, monkeypatch):
    from graph.records import Event
    from pymk.errors import EventLogUnavailableError

    log = EventLog(tmp_path / "log")
    first = Event("send", "a", "b", 10.0)
    assert log.append([first]) == 1
    (seg,) = log.segments()
    before = seg.read_bytes()
    with monkeypatch.context() as m:
        _disk_fills_after(m, keep=7)
        with pytest.raises(EventLogUnavailableError, match=f"{seg.name}.*No space left"):
            log.append([Event("accept", "b", "a", 11.0)])
    assert seg.read_bytes() == before                      # the half-written line was cut back off
    assert log.append([Event("block", "a", "c", 12.0)]) == 1
    assert [(e.type, e.ts) for e in log.read()] == [("send", 10.0), ("block", 12.0)]  # nothing swallowed


def test_a_segment_that_cannot_be_written_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import graph.eventlog
    from graph.records import Event
    from pymk.errors import EventLogUnavailableError

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    log = EventLog(tmp_path / "log")
    monkeypatch.setattr(graph.eventlog.os, "fsync", full)
    with pytest.raises(EventLogUnavailableError, match=r"file-x\.jsonl.*No space left"):
        log.write_segment("file-x", [Event("send", "a", "b", 1.0)])
    assert list((tmp_path / "log").iterdir()) == []
    with pytest.raises(KeyError), log.segment_writer("file-y"):  # the caller's own errors pass through
        raise KeyError("bad row")
    assert list((tmp_path / "log").iterdir()) == []


def test_erasure_rewrites_every_settled_segment_without_the_deleted_accounts(tmp_path):
    from graph.records import Event

    log = EventLog(tmp_path / "log")
    log.write_segment("file-abc", [Event("send", "u1", "u2", 10.0), Event("accept", "u3", "u1", 11.0),
                                   Event("send", "u3", "u4", 12.0)])
    old = log.root / "live-2026010100-h-1.jsonl"
    shown = [{"user_id": "u2", "position": 0}, {"user_id": "u5", "position": 1, "features": [0.5]}]
    old.write_text('{"type":"dismiss","src":"u4","dst":"u2","ts":13}\nnot json\n{"viewer":"u2","candidates":[]}\n'
                   + json.dumps({"viewer": "u1", "ts": 9, "candidates": shown}) + "\n[1, 2]\n")
    an_hour_ago = time.time() - 3 * 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    log.append([Event("send", "u2", "u4", 14.0)])   # this process's live segment: may still be appended to
    report = log.erase({"u2", "nobody"})
    assert (report.lines, report.scrubbed, report.segments, len(report.skipped)) == (3, 1, 2, 1)
    assert [(e.src, e.dst) for e in EventLog(log.root).read()] == [("u3", "u1"), ("u3", "u4"), ("u2", "u4")]
    lines = old.read_text().splitlines()
    assert lines[0] == "not json" and lines[2] == "[1, 2]" and abs(old.stat().st_mtime - an_hour_ago) < 1
    # u1's served list keeps its record and u5, without u2 (the deleted account was shown to u1)
    assert json.loads(lines[1]) == {"viewer": "u1", "ts": 9, "candidates": shown[1:]}
    assert log.erase({"u2"}).lines == 0 and log.erase({"u2"}, settle_s=0).lines == 1   # settled: erased too
    assert sorted(p.name for p in log.root.glob(".*")) == [".erase.lock", ".erased.json"]   # no temp file left


def test_erasure_reads_again_only_what_is_new_since_the_last_run(tmp_path, monkeypatch):
    import graph.erasure
    from graph.records import Event

    log = EventLog(tmp_path / "log")
    log.write_segment("file-1", [Event("send", "u1", "u2", 1.0), Event("send", "u3", "u4", 2.0)])
    log.write_segment("file-2", [Event("send", "u3", "u5", 3.0)])
    assert log.erase({"u1"}, settle_s=0).lines == 1
    checked: list[frozenset] = []
    scrub = graph.erasure._scrub
    monkeypatch.setattr(graph.erasure, "_scrub", lambda line, ids: checked.append(frozenset(ids)) or scrub(line, ids))
    report = log.erase({"u1"}, settle_s=0)          # nothing new: no segment is read
    assert (report.lines, report.unread, checked) == (0, 2, [])
    report = log.erase({"u1", "u5"}, settle_s=0)    # u5 deleted since: every segment read, for u5 alone
    assert (report.lines, report.segments) == (1, 1) and set(checked) == {frozenset({"u5"})}
    checked.clear()
    log.write_segment("file-3", [Event("send", "u1", "u3", 4.0)])   # a new segment: read for everyone
    assert log.erase({"u1", "u5"}, settle_s=0).lines == 1 and set(checked) == {frozenset({"u1", "u5"})}
    (log.root / ".erased.json").write_text("{not json")             # a broken memory: read everything again
    log.write_segment("file-4", [Event("send", "u5", "u3", 5.0)])
    assert log.erase({"u1", "u5"}, settle_s=0).lines == 1
    assert [(e.src, e.dst) for e in log.read()] == [("u3", "u4")]


def test_erasure_of_an_id_created_again_takes_only_the_former_accounts_records(tmp_path):
    from graph.records import Event

    log = EventLog(tmp_path / "log")
    log.write_segment("file-1", [Event("send", "u1", "u2", 1.0), Event("accept", "u3", "u1", 2.0),
                                 Event("send", "u1", "u4", 10.0), Event("send", "u3", "u4", 3.0)])
    served = log.root / "live-2026010100-h-1.jsonl"
    served.write_text("".join(json.dumps(r) + "\n" for r in [
        {"viewer": "u1", "ts": 4, "candidates": []},                                   # the former account's
        {"viewer": "u9", "ts": 4, "candidates": [{"user_id": "u1"}, {"user_id": "u2"}]},
        {"viewer": "u9", "ts": 11, "candidates": [{"user_id": "u1"}]},                 # the new account shown
        {"viewer": "u1", "candidates": []}]))                                         # no time: erased
    report = log.erase({"u1": 5.0}, settle_s=0)   # deleted at 5, the id taken again since
    assert (report.lines, report.scrubbed) == (4, 1)
    assert [(e.src, e.dst, e.ts) for e in log.read()] == [("u1", "u4", 10.0), ("u3", "u4", 3.0)]
    assert [json.loads(x) for x in served.read_text().splitlines()] == [
        {"viewer": "u9", "ts": 4, "candidates": [{"user_id": "u2"}]},
        {"viewer": "u9", "ts": 11, "candidates": [{"user_id": "u1"}]}]
    assert log.erase({"u1": 5.0}, settle_s=0).unread == 2   # remembered with its time: nothing read again
    report = log.erase({"u1": math.inf}, settle_s=0)         # the new account deleted too: all of it
    assert (report.lines, report.scrubbed, report.unread) == (1, 1, 0)
    assert [(e.src, e.dst) for e in log.read()] == [("u3", "u4")]


@pytest.mark.integration
def test_events_erase_command_erases_the_store_tombstones(neo4j_store, prefix, tmp_path):
    from click.testing import CliRunner

    from graph.records import Event
    from pymk.cli import main

    a, b, c = (f"{prefix}{x}" for x in "abc")
    log = EventLog(tmp_path / "events")
    log.write_segment("file-1", [Event("send", a, b, 1.0), Event("send", c, a, 2.0), Event("send", b, c, 3.0)])
    neo4j_store.add_friendships([Friendship(a, b), Friendship(b, c)])
    neo4j_store.delete_users([a])
    assert a in neo4j_store.deletions() and b not in neo4j_store.deletions()
    result = CliRunner().invoke(main, ["events", "erase"], env={"PYMK_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "event log: 2 records" in result.output
    assert [(e.src, e.dst) for e in log.read()] == [(b, c)]


@pytest.mark.parametrize("byte_search_max", [512, 0])
def test_erasure_finds_an_id_however_each_writer_spells_it(tmp_path, monkeypatch, byte_search_max):
    import graph.erasure
    from graph.records import Event

    monkeypatch.setattr(graph.erasure, "BYTE_SEARCH_MAX", byte_search_max)
    odd = 'Zoë "z" \\ 1'                        # json.dumps writes \u00eb and escapes; orjson writes ë
    log = EventLog(tmp_path / "log")
    log.write_segment("file-1", [Event("send", odd, "u2", 1.0), Event("send", "u3", "u2", 2.0)])
    log.write_segment("file-2", [Event("send", "u3", "u4", 3.0)])
    log.append_records([{"viewer": "u2", "candidates": [{"user_id": odd}, {"user_id": "u3"}]}])
    parsed: list[bytes] = []
    scrub = graph.erasure._scrub
    monkeypatch.setattr(graph.erasure, "_scrub", lambda line, ids: parsed.append(bytes(line)) or scrub(line, ids))
    report = log.erase({odd}, settle_s=0)
    assert (report.lines, report.scrubbed, report.segments) == (1, 1, 2)
    # searched as bytes, only the two lines that spell the id are parsed; the rest is copied as it is
    assert (report.parsed, len(parsed)) == ((0, 2) if byte_search_max else (3, 4))
    assert [(e.src, e.dst) for e in log.read()] == [("u3", "u2"), ("u3", "u4")]
    assert odd not in "".join(p.read_text() for p in log.segments())
    last = log.root / "file-3.jsonl"   # a last line with no newline, and an id inside another's
    last.write_text('{"src":"u3","dst":"u33"}\n{"src":"u5","dst":"u3"}')
    assert log.erase({odd, "u3"}, settle_s=0).lines == 4
    assert last.read_text() == ""


def test_erasure_leaves_a_segment_replaced_meanwhile_and_one_gone_meanwhile(tmp_path, monkeypatch):
    import graph.erasure
    from graph.records import Event

    log = EventLog(tmp_path / "log")
    log.write_segment("file-1", [Event("send", "u1", "u2", 1.0)])
    log.write_segment("file-2", [Event("send", "u3", "u1", 2.0)])
    edits = graph.erasure._edits

    def reingested(f, ids, pattern):   # file-1 is ingested again while its edits are being found
        found = edits(f, ids, pattern)
        if f.name.endswith("file-1.jsonl"):
            log.write_segment("file-1", [Event("send", "u1", "u2", 1.0), Event("send", "u1", "u4", 3.0)])
        return found

    monkeypatch.setattr(graph.erasure, "_edits", reingested)
    real_segments = EventLog.segments
    monkeypatch.setattr(EventLog, "segments", lambda self: [*real_segments(self), self.root / "file-0-gone.jsonl"])
    report = log.erase({"u1"}, settle_s=0)   # no error; file-1 left as the new ingestion wrote it
    assert (report.lines, report.segments) == (1, 1)
    assert len((log.root / "file-1.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(graph.erasure, "_edits", edits)
    monkeypatch.setattr(EventLog, "segments", real_segments)
    assert log.erase({"u1"}, settle_s=0).lines == 2   # not remembered as clean: the next run erases it
    assert list(log.read()) == []


def test_a_second_erasure_of_the_same_log_waits_for_the_first(tmp_path):
    import fcntl
    import threading

    from graph.erasure import LOCK
    from graph.records import Event

    log = EventLog(tmp_path / "log")
    log.write_segment("file-1", [Event("send", "u1", "u2", 1.0)])
    with open(log.root / LOCK, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)     # a first run holds the log
        second = threading.Thread(target=log.erase, args=({"u1"},), kwargs={"settle_s": 0})
        second.start()
        second.join(0.5)
        assert second.is_alive() and len(list(log.read())) == 1
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    second.join(10)
    assert not second.is_alive() and list(log.read()) == []
