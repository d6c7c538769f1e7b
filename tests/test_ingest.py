"""Ingestion: idempotent, batched, bad rows reported while good rows load, safe to re-run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from graph.eventlog import EventLog
from graph.ingest import ingest_deletions, ingest_edges, ingest_events, ingest_users
from graph.records import Friendship, UserRecord


def _write_edges(path, prefix: str, n: int) -> set[tuple[str, str]]:
    pairs = set()
    with open(path, "w") as f:
        f.write("# generated\n")
        for i in range(n):
            a, b = f"{prefix}{i % 997}", f"{prefix}{(i * 7919) % 1009 + 1000}"
            f.write(f"{a} {b} {i}\n")
            pairs.add(tuple(sorted((a, b))))
    return pairs


def test_same_edge_list_twice_leaves_same_counts(store, prefix, tmp_path):
    path = tmp_path / "edges.txt"
    pairs = _write_edges(path, prefix, 3000)
    before = store.counts()
    r1 = ingest_edges(store, path, batch_size=700, progress=False)
    after_first = store.counts()
    r2 = ingest_edges(store, path, batch_size=300, progress=False)
    assert store.counts() == after_first
    assert after_first.friendships - before.friendships == len(pairs)
    assert (r1.rows_read, r1.loaded, r1.rejected) == (3000, 3000, 0)
    assert r2.loaded == 3000


def test_malformed_lines_are_reported_and_good_lines_load(store, prefix, tmp_path, caplog):
    path = tmp_path / "mixed.txt"
    path.write_text(f"{prefix}a {prefix}b 1\nbroken\n{prefix}b {prefix}c 2\n{prefix}c {prefix}d yesterday\n"
                    f"{prefix}d {prefix}d 3\n{prefix}d {prefix}e\n")
    report = ingest_edges(store, path, batch_size=2, progress=False)
    assert (report.rows_read, report.loaded, report.rejected) == (6, 3, 3)
    assert [e.line for e in report.errors] == [2, 4, 5]
    assert f"{path}:2:" in caplog.text and f"{path}:4: bad timestamp 'yesterday'" in caplog.text
    assert store.friends(f"{prefix}b") == [f"{prefix}a", f"{prefix}c"]
    assert store.friends(f"{prefix}d") == [f"{prefix}e"]


def test_a_message_edge_list_loads_each_pair_once_and_logs_every_message(store, prefix, tmp_path):
    from graph.snapshot import from_store
    from graph.snapshot.format import EVENT_CODE

    path = tmp_path / "messages.txt"
    path.write_text(f"{prefix}a {prefix}b 10\n{prefix}b {prefix}a 11\n{prefix}a {prefix}b 12\n{prefix}b {prefix}c 13\n"
                    f"{prefix}c {prefix}d\n")   # the untimed row is a tie, not an interaction
    log = EventLog(tmp_path / "log")
    report = ingest_edges(store, path, batch_size=2, progress=False, interactions=log)
    assert (report.loaded, report.rejected) == (5, 0)
    assert store.friends(f"{prefix}b") == [f"{prefix}a", f"{prefix}c"]
    ingest_edges(store, path, progress=False, interactions=log)   # re-run: the same one segment
    said = [(e.type, e.src.removeprefix(prefix), e.dst.removeprefix(prefix), e.ts) for e in log.read()]
    assert said == [("interaction", "a", "b", 10.0), ("interaction", "b", "a", 11.0),
                    ("interaction", "a", "b", 12.0), ("interaction", "b", "c", 13.0)]
    snap = from_store(store, log)
    mine = np.isin(snap.events["src"], [snap.index_of(f"{prefix}{x}") for x in "abc"])
    assert (snap.events["type"][mine] == EVENT_CODE["interaction"]).sum() == 4


def test_users_then_events_with_unknown_users_rejected(store, prefix, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("id,city,opted_out\n" + "".join(f"{prefix}{i},Oslo,{i == 2}\n" for i in range(4)))
    assert ingest_users(store, users, progress=False).loaded == 4
    events = tmp_path / "events.jsonl"
    events.write_text(
        f'{{"type":"send","src":"{prefix}0","dst":"{prefix}1","ts":1}}\n'
        f'{{"type":"send","src":"{prefix}0","dst":"{prefix}ghost","ts":2}}\n'
        f'{{"type":"impression","src":"{prefix}0","dst":"{prefix}3","ts":3,"position":0}}\n'
        f'{{"type":"accept","src":"{prefix}1","dst":"{prefix}0","ts":4}}\n')
    log = EventLog(tmp_path / "log")
    report = ingest_events(store, events, log, progress=False)
    assert (report.loaded, report.rejected) == (3, 1)
    assert report.errors[0].line == 2 and f"'{prefix}ghost'" in report.errors[0].message
    assert store.friends(f"{prefix}0") == [f"{prefix}1"]
    assert store.opted_out_among([f"{prefix}{i}" for i in range(4)]) == {f"{prefix}2"}
    # re-ingesting the same file replaces its segment: the log does not grow
    ingest_events(store, events, log, progress=False)
    assert len(log.segments()) == 1 and len(list(log.read())) == 3


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_later_partial_row_updates_only_its_given_fields_whatever_the_batches(store, prefix, tmp_path, batch_size):
    """A full row, then a row for the same id with blanks: the blanks keep what was given before (an
    opt-out must not be lost because two rows shared a batch)."""
    users = tmp_path / "users.csv"
    users.write_text(f"id,school,city,opted_out\n{prefix}u,mit,oslo,true\n{prefix}v,,bergen,\n{prefix}u,harvard,,\n")
    assert ingest_users(store, users, batch_size=batch_size, progress=False).loaded == 3
    u = store.get_user(f"{prefix}u")
    assert (u.school, u.city, u.opted_out) == ("harvard", "oslo", True)
    assert store.opted_out_among([f"{prefix}u", f"{prefix}v"]) == {f"{prefix}u"}


@pytest.mark.integration
@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_deletions_file_deletes_each_account_once_and_can_be_rerun(store, prefix, tmp_path, batch_size):
    ids = [f"{prefix}{i}" for i in range(5)]
    store.add_friendships([Friendship(ids[i], ids[i + 1]) for i in range(4)])
    path = tmp_path / "deletions.csv"
    path.write_text(f"id,reason\n{ids[1]},gdpr\n\n{ids[3]},\n{ids[1]},again\n\"{ids[4]}\n")
    report = ingest_deletions(store, path, batch_size, progress=False)
    assert (report.rows_read, report.loaded, report.rejected) == (4, 3, 1)
    assert report.summary().endswith("; 2 accounts deleted now, 1 already gone or unknown")   # ids[1] twice
    assert report.errors[0].line == 6    # file and line of the malformed row
    assert store.existing_users(ids) == {ids[0], ids[2], ids[4]}
    assert store.opted_out_among(ids) == {ids[1], ids[3]} and store.friends(ids[2]) == []
    again = ingest_deletions(store, path, batch_size, progress=False)   # re-run: nothing more, no error
    assert again.loaded == 3 and store.existing_users(ids) == {ids[0], ids[2], ids[4]}
    assert again.detail == "0 accounts deleted now, 3 already gone or unknown"


def test_killed_ingestion_rerun_completes_without_duplicates(neo4j_store, prefix, tmp_path, settings):
    path = tmp_path / "big.txt"
    pairs = _write_edges(path, prefix, 40_000)
    before = neo4j_store.counts()
    env = {**os.environ, "PYMK_DATA_DIR": str(settings.data_dir), "PYMK_NEO4J_PORT": str(settings.neo4j.port)}
    proc = subprocess.Popen([sys.executable, "-m", "pymk", "ingest", "edges", str(path), "--batch-size", "200",
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while neo4j_store.counts().friendships == before.friendships and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = neo4j_store.counts().friendships - before.friendships
    assert 0 < partial < len(pairs), "the kill should land mid-run"
    ingest_edges(neo4j_store, path, batch_size=5000, progress=False)
    assert neo4j_store.counts().friendships - before.friendships == len(pairs)
    ids = {x for p in pairs for x in p}
    neo4j_store.delete_users(ids)


@pytest.mark.integration
def test_ingest_command_exits_non_zero_when_rows_are_rejected(neo4j_store, prefix, tmp_path):
    from click.testing import CliRunner

    from pymk.cli import main

    path = tmp_path / "edges.txt"
    path.write_text(f"{prefix}a {prefix}b 5\n{prefix}c\n")
    rejects = tmp_path / "rejects.txt"
    result = CliRunner().invoke(main, ["ingest", "edges", str(path), "--no-progress", "--rejects", str(rejects)])
    assert result.exit_code == 2, result.output
    assert "1 row(s) rejected" in result.output and rejects.read_text().startswith(f"{path}:2:")
    assert neo4j_store.friends(f"{prefix}a") == [f"{prefix}b"]  # the good row loaded anyway
    again = CliRunner().invoke(main, ["ingest", "edges", str(path), "--no-progress", "--allow-rejects"])
    assert again.exit_code == 0, again.output


@pytest.mark.integration
def test_suggest_command_goes_through_the_hard_rules_with_the_decline_cool_down(neo4j_store, prefix):
    from click.testing import CliRunner

    from graph.records import Event, Friendship
    from pymk.cli import main

    p = prefix
    neo4j_store.add_friendships([Friendship(f"{p}a", f"{p}b"), Friendship(f"{p}b", f"{p}c"),
                                 Friendship(f"{p}a", f"{p}d"), Friendship(f"{p}d", f"{p}e")])
    now = time.time()
    long_ago = now - 400 * 86_400   # past the 90-day cool-down: may be suggested again
    neo4j_store.apply_events([Event("send", f"{p}a", f"{p}c", long_ago), Event("decline", f"{p}c", f"{p}a", long_ago),
                              Event("send", f"{p}a", f"{p}e", now - 60), Event("decline", f"{p}e", f"{p}a", now - 30)])
    result = CliRunner().invoke(main, ["suggest", f"{p}a"])
    assert result.exit_code == 0, result.output
    shown = {line.split()[0] for line in result.output.splitlines()[1:]}
    assert f"{p}c" in shown and f"{p}e" not in shown


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


@pytest.mark.integration
def test_schema_command_makes_the_indexes_serving_reads_by(neo4j_store, prefix):
    """After an upgrade that adds an index (the ties' written_at), `pymk neo4j schema` makes it; the API
    does the same at start."""
    from click.testing import CliRunner

    from pymk.cli import main

    def indexes() -> set[str]:
        return {r["name"] for r in neo4j_store._driver.execute_query("SHOW INDEXES YIELD name").records}

    neo4j_store._driver.execute_query("DROP INDEX friends_written_at IF EXISTS")
    assert "friends_written_at" not in indexes()
    neo4j_store.add_friendships([Friendship(f"{prefix}n", f"{prefix}m")])
    neo4j_store.upsert_users([UserRecord(id=f"{prefix}n", created_at=time.time())])
    # without the index the read of what changed still answers (planned another way, slower)
    changed = neo4j_store.newcomer_changes(time.time() - 60, time.time() - 60, 100, 10)
    assert f"{prefix}n" in {a.id for a in changed.accounts}
    result = CliRunner().invoke(main, ["neo4j", "schema"])
    assert result.exit_code == 0, result.output
    assert "schema in place" in result.output and "friends_written_at" in indexes()
    neo4j_store.delete_users([f"{prefix}n", f"{prefix}m"])


@pytest.mark.integration
@pytest.mark.parametrize("signature", [
    "pymk.mergeFriendships(rows :: LIST<MAP>) :: (created :: INTEGER)",   # other arguments: the call would fail
    # the same arguments, from before it stamped the users it creates (their `written_at`)
    "pymk.mergeFriendships(rows :: LIST<MAP>, writtenAt :: FLOAT) :: (created :: INTEGER, matched :: INTEGER)"])
def test_a_server_running_an_older_launcher_gets_plain_cypher(settings, neo4j_store, prefix, caplog, signature):
    """A local Neo4j started before an upgrade still has the older procedure: ingestion goes on in plain
    Cypher, with a warning to restart it, rather than failing on every batch or writing what this code's
    readers would miss."""
    from graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(settings.neo4j)
    read = store._read
    old = [["pymk.mergeFriendships", signature]]
    store._read = lambda query, **params: ([{"procedures": old}] if "SHOW PROCEDURES" in query
                                           else read(query, **params))
    try:
        with caplog.at_level("WARNING", logger="graph.neo4j_store"):
            assert store.add_friendships([Friendship(f"{prefix}a", f"{prefix}b", 3.0)]) == 1
        assert "another version" in caplog.text and not store._has("pymk.mergeFriendships")
        assert neo4j_store.friends(f"{prefix}a") == [f"{prefix}b"]
        assert {f"{prefix}a", f"{prefix}b"} <= {a.id for a in neo4j_store.new_accounts(time.time() - 60, 10_000, 1)}
    finally:
        store.delete_users_with_prefix(prefix)
        store.close()
