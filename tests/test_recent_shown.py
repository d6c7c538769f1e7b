"""Impressions logged since the served snapshot count in the seen penalty (candidates/recent_shown.py)."""

from __future__ import annotations

import os
import time

import pytest

from candidates.filters import SnapshotStateReader
from candidates.pipeline import CandidatePipeline
from candidates.recent_shown import RecentImpressions, RecentShownConfig, recent_impressions
from graph.eventlog import EventLog, event_to_json
from graph.memory_store import MemoryGraphStore
from graph.records import Event, Friendship
from graph.snapshot import from_store

INLINE = RecentShownConfig(refresh_s=0)


@pytest.fixture
def world(tmp_path):
    """Users a..e (a-b, b-c, b-d, b-e) and an event log whose newest impression is at t=100."""
    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b", 1.0), Friendship("b", "c", 1.0), Friendship("b", "d", 1.0),
                           Friendship("b", "e", 1.0)])
    log = EventLog(tmp_path / "events")
    log.write_segment("old", [Event("impression", "a", "c", 90.0, position=0),
                              Event("impression", "a", "c", 100.0, position=0)])
    return log, from_store(store, log)


def _append(log: EventLog, *events: Event) -> None:
    log.root.mkdir(parents=True, exist_ok=True)
    with open(log.root / "live-test.jsonl", "a") as f:
        f.writelines(event_to_json(ev) + "\n" for ev in events)


def test_counts_only_the_impressions_the_snapshot_does_not_hold(world):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    assert recent.after == 100.0 and recent.counts(snap.index_of("a")) == {}
    _append(log, Event("impression", "a", "c", 100.0, position=0),   # dated as the newest held: not new
            Event("impression", "a", "c", 101.0, position=0), Event("impression", "a", "d", 102.0, position=1),
            Event("impression", "a", "c", 103.0, position=0), Event("send", "a", "c", 104.0),
            Event("impression", "c", "a", 105.0, position=0), Event("impression", "zed", "a", 105.0, position=0))
    i = snap.index_of
    assert recent.counts(i("a")) == {i("c"): 2, i("d"): 1}
    assert recent.counts(i("c")) == {i("a"): 1} and recent.counts(i("e")) == {}
    assert recent.size == 5 and dict(recent.others_counts("zed")) == {"a": 1}   # a viewer newer than the snapshot


def test_reads_only_what_was_appended_since_and_waits_for_a_whole_line(world):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    i = snap.index_of
    _append(log, Event("impression", "a", "c", 101.0))
    assert recent.counts(i("a")) == {i("c"): 1}
    with open(log.root / "live-test.jsonl", "a") as f:   # a line half written
        f.write('{"type":"impression","src":"a","dst":"d","ts":10')
    assert recent.counts(i("a")) == {i("c"): 1}
    with open(log.root / "live-test.jsonl", "a") as f:
        f.write('2.0}\n')
    _append(log, Event("impression", "a", "c", 103.0))
    assert recent.counts(i("a")) == {i("c"): 2, i("d"): 1}
    for n in range(40):   # many reads: the runs merge as they grow, counts stay whole
        _append(log, Event("impression", "a", "e", 200.0 + n))
        assert recent.counts(i("a"))[i("e")] == n + 1
    assert len(recent._held.runs) <= 7


def test_users_the_snapshot_does_not_hold_are_counted_by_id(world):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    _append(log, Event("impression", "a", "new1", 101.0), Event("impression", "a", "new1", 102.0),
            Event("impression", "c", "new2", 102.0))
    assert dict(recent.newcomer_counts(snap.index_of("a"))) == {"new1": 2}
    assert dict(recent.newcomer_counts(snap.index_of("c"))) == {"new2": 1}
    assert recent.counts(snap.index_of("a")) == {}


def test_a_segment_rewritten_in_place_is_taken_as_read(world):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    i = snap.index_of
    log.write_segment("day", [Event("impression", "a", "c", 101.0), Event("impression", "a", "d", 102.0)])
    assert recent.counts(i("a")) == {i("c"): 1, i("d"): 1}
    # the nightly erasure rewrites a settled segment without a deleted account's records (a new file renamed
    # in); re-ingesting a file writes it again as it was: neither is counted again
    log.write_segment("day", [Event("impression", "a", "c", 101.0)])
    assert recent.counts(i("a")) == {i("c"): 1, i("d"): 1}
    with open(log.root / "day.jsonl", "a") as f:   # what is appended to it later counts
        f.write(event_to_json(Event("impression", "a", "e", 103.0)) + "\n")
    assert recent.counts(i("a")) == {i("c"): 1, i("d"): 1, i("e"): 1}


def test_unreadable_lines_are_skipped_and_named(world, caplog):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    log.root.mkdir(parents=True, exist_ok=True)
    with open(log.root / "live-bad.jsonl", "w") as f:
        f.write('{"type":"impression","src":"a","dst":"c","ts":"soon"}\n[1, "impression"]\nimpression\n'
                '{"type":"impression","src":"a","dst":"c","ts":101}\n')
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 1}
    assert caplog.text.count("live-bad.jsonl: skipping an unreadable event log line") == 3


def test_a_segment_last_written_before_the_snapshot_is_not_opened(world):
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    _append(log, Event("impression", "a", "c", 150.0))
    os.utime(log.root / "live-test.jsonl", (50.0, 50.0))   # as if written before the newest held impression
    assert recent.counts(snap.index_of("a")) == {}
    assert "live-test.jsonl" not in recent._read


def test_the_cap_stops_reading_with_a_warning(world, caplog):
    log, snap = world
    recent = recent_impressions(log.root, snap, RecentShownConfig(refresh_s=0, max_impressions=2))
    _append(log, *[Event("impression", "a", "c", 101.0 + n) for n in range(5)])
    recent.counts(snap.index_of("a"))
    _append(log, Event("impression", "a", "d", 200.0))
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 5}   # one read: the whole first chunk
    assert "the cap (PYMK_SEEN_MAX_IMPRESSIONS)" in caplog.text


def test_later_reads_run_in_the_background(world):
    log, snap = world
    recent = RecentImpressions(log.root, snap, 100.0, RecentShownConfig(refresh_s=0.05))
    recent.counts(snap.index_of("a"))
    recent.reading.join()
    _append(log, Event("impression", "a", "c", 101.0))
    assert recent.counts(snap.index_of("a")) == {}   # the last read is fresh: no read
    time.sleep(0.06)
    recent.counts(snap.index_of("a"))   # stale: a read starts in its own thread, this request goes on
    recent.reading.join()
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 1}


def test_the_pipeline_adds_them_to_the_snapshot_count(world):
    log, snap = world
    pipe = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    i = snap.index_of
    assert pipe.times_seen(i("a")) == {i("c"): 2}
    pipe.recent_shown = recent_impressions(log.root, snap, INLINE)
    _append(log, Event("impression", "a", "c", 101.0), Event("impression", "a", "d", 102.0))
    assert pipe.times_seen(i("a")) == {i("c"): 3, i("d"): 1}
    pipe.close()


def test_the_pipeline_counts_by_id_for_lists_served_off_the_store(world):
    log, snap = world
    pipe = CandidatePipeline(snap, [], SnapshotStateReader(snap))
    assert pipe.seen_by_id("a") == {"c": 2} and pipe.seen_by_id("zed") == {}
    pipe.recent_shown = recent_impressions(log.root, snap, INLINE)
    _append(log, Event("impression", "a", "c", 101.0), Event("impression", "a", "new1", 102.0),
            Event("impression", "zed", "a", 103.0), Event("impression", "zed", "a", 104.0))
    assert pipe.seen_by_id("a") == {"c": 3, "new1": 1}
    assert pipe.seen_by_id("zed") == {"a": 2}
    pipe.close()


def test_a_line_longer_than_a_read_is_skipped_once(world, caplog, monkeypatch):
    import candidates.recent_shown as rs

    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    monkeypatch.setattr(rs, "CHUNK_BYTES", 80)
    long = Event("impression", "a", "d", 101.0, extra={"note": "x" * 200})
    _append(log, long, Event("impression", "a", "c", 102.0))
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 1}
    warned = caplog.text.count("longer than 80 bytes")
    assert warned >= 1
    _append(log, Event("impression", "a", "c", 103.0))
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 2}
    assert caplog.text.count("longer than 80 bytes") == warned   # not read again


def test_every_read_is_reported_and_a_failed_one_keeps_what_was_read(world, caplog):
    log, snap = world
    reads = []
    recent = recent_impressions(log.root, snap, INLINE, on_read=lambda ok, held: reads.append((ok, held)))
    _append(log, Event("impression", "a", "c", 101.0))
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 1}

    def broken(deadline):
        raise PermissionError(f"[Errno 13] Permission denied: '{log.root}'")

    recent._read_new = broken
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 1}
    assert reads == [(True, 0), (True, 1), (False, 1)]
    assert "reading" in caplog.text and "Permission denied" in caplog.text


def test_random_appends_in_random_pieces_count_as_a_full_read_does(world, monkeypatch):
    """Against a reference that reads every line of every segment at the end: random events appended to
    random segments in random byte pieces (lines cut anywhere), read at random moments, in small chunks."""
    import random
    from collections import Counter

    import candidates.recent_shown as rs

    log, snap = world
    monkeypatch.setattr(rs, "CHUNK_BYTES", 256)
    users = ["a", "b", "c", "d", "e", "new1", "zed"]
    for seed in range(30):
        rng = random.Random(seed)
        for seg in log.root.glob("live-*.jsonl"):
            seg.unlink()
        recent = recent_impressions(log.root, snap, INLINE)
        pending = {f"live-{s}.jsonl": b"" for s in range(3)}
        for _ in range(rng.randrange(5, 40)):
            name = rng.choice(list(pending))
            src, dst = rng.sample(users, 2)
            kind = rng.choice(["impression"] * 4 + ["send", "dismiss"])
            pending[name] += (event_to_json(Event(kind, src, dst, rng.choice([99.0, 100.0, 101.0, 150.0]),
                                                  position=rng.randrange(3))) + "\n").encode()
            for n, data in pending.items():   # write a random prefix of what is pending
                cut = rng.randrange(len(data) + 1)
                with open(log.root / n, "ab") as f:
                    f.write(data[:cut])
                pending[n] = data[cut:]
            if rng.random() < 0.3:
                recent.refresh(force=True)
        for n, data in pending.items():
            with open(log.root / n, "ab") as f:
                f.write(data)
        once = {(ev.src, ev.dst, ev.ts, ev.position) for seg in log.root.glob("live-*.jsonl") for ev in _events(seg)
                if ev.type == "impression" and ev.ts > 100.0}   # a retried write counts once
        want = Counter((src, dst) for src, dst, _, _ in once)
        for viewer in users:
            got = _shown_to(recent, snap, viewer)
            assert got == {d: n for (s, d), n in want.items() if s == viewer}, (seed, viewer)


def _events(path):
    from graph.eventlog import read_segment_events

    return list(read_segment_events(path))


def _shown_to(recent, snap, viewer: str) -> dict[str, int]:
    """What the recent counts say `viewer` was shown, by id (snapshot users, newcomers, viewers it lacks)."""
    if not snap.has_user(viewer):
        return dict(recent.others_counts(viewer))
    i = snap.index_of(viewer)
    got = {snap.external_id(s): n for s, n in recent.counts(i).items()}
    return got | dict(recent.newcomer_counts(i))


def test_an_impression_logged_twice_counts_once(world):
    """A retried write (the same users, time and position) is one impression, as the snapshot counts it."""
    log, snap = world
    recent = recent_impressions(log.root, snap, INLINE)
    i = snap.index_of
    batch = [Event("impression", "a", "c", 101.0, position=0), Event("impression", "a", "new1", 101.0, position=1),
             Event("impression", "zed", "a", 101.0, position=0)]
    _append(log, *batch)
    recent.counts(i("a"))
    _append(log, *batch, Event("impression", "a", "c", 101.0, position=2), Event("impression", "a", "c", 102.0,
                                                                                position=0))
    assert recent.counts(i("a")) == {i("c"): 3}
    assert dict(recent.newcomer_counts(i("a"))) == {"new1": 1} and dict(recent.others_counts("zed")) == {"a": 1}


def test_a_client_clock_ahead_does_not_hide_the_impressions_after_the_snapshot(tmp_path):
    """The snapshot holds an impression dated a day ahead (a client's clock; the API accepts a day): the
    impressions logged after the export still count, and those the snapshot holds are not counted again."""
    store = MemoryGraphStore()
    store.add_friendships([Friendship("a", "b", 1.0), Friendship("b", "c", 1.0), Friendship("b", "d", 1.0)])
    log = EventLog(tmp_path / "events")
    now = time.time()
    log.write_segment("s", [Event("impression", "a", "c", now - 60, position=0),
                            Event("impression", "a", "d", now + 86_000, position=0),   # the clock ahead
                            Event("impression", "a", "c", now + 5, position=1)])       # logged as the export ran
    snap = from_store(store, log)   # read its accounts at about `now`
    recent = recent_impressions(log.root, snap, INLINE)
    assert recent.after <= snap.meta["accounts_read_at"] < now + 5
    i = snap.index_of
    _append(log, Event("impression", "a", "c", now + 5, position=1),   # a retry of one the snapshot holds
            Event("impression", "a", "c", now + 30, position=0), Event("impression", "a", "d", now + 31, position=0))
    assert recent.counts(i("a")) == {i("c"): 1, i("d"): 1}


def test_a_long_backlog_is_read_partly_before_serving_and_the_rest_after(world, caplog, monkeypatch):
    """However long the snapshot has not been refreshed, a worker's boot stays short: the backlog read before
    serving stops after `first_read_s`; the rest is read after (here by the next request), none twice."""
    import candidates.recent_shown as rs

    log, snap = world
    monkeypatch.setattr(rs, "CHUNK_BYTES", 128)
    _append(log, *[Event("impression", "a", "c", 101.0 + n, position=0) for n in range(50)])
    recent = RecentImpressions(log.root, snap, 100.0, RecentShownConfig(refresh_s=0, first_read_s=0.0))
    recent._budget_s = 0.0
    recent.refresh(force=True)
    assert not recent.caught_up and recent.size < 50
    assert recent.counts(snap.index_of("a")) == {snap.index_of("c"): 50} and recent.caught_up
    late = recent_impressions(log.root, snap, RecentShownConfig(refresh_s=0, first_read_s=0.0))
    assert "the backlog since the snapshot is longer than 0 s of reading" in caplog.text
    assert late.counts(snap.index_of("a")) == {snap.index_of("c"): 50}
