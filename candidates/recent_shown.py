"""Impressions logged since the served snapshot, for the re-rank's seen penalty.

The seen penalty (ranker/rerank.py) is what makes each refresh of a list bring new faces. Its counts come
from the snapshot's event log, so until the next snapshot (a day) a viewer who opened the list ten times
saw the same head ten times (and a viewer served off the store, the fresh path, always did).
`RecentImpressions` reads the impressions appended to the event log since
then: every API worker tails the log's segments (`$PYMK_DATA_DIR/events`, written by every worker on the
machine, or by every machine where the directory is shared), reading only the bytes written since its last
read: the first (the backlog since the snapshot: a worker starting late in the day) before the worker serves
with the snapshot, later ones in the background when a request finds the last read older than `refresh_s`
(a few milliseconds of parsing each: a long read in a thread of its own would hold the interpreter's lock
against the requests, bench/recent_shown.py).

Which impressions: those dated after `after`, the snapshot's newest impression or, when earlier, the time
its export began (a client whose clock runs ahead must not date "the snapshot's newest" a day ahead and hide
every impression until then); one the snapshot holds (same users and second) is not counted again. An
impression logged after the export but dated before `after` waits for the next snapshot.
A segment last written before that time was read whole by the export and is not opened. A segment rewritten
in place (the nightly erasure of deleted accounts, which leaves alone the segments written in the last hour)
is taken as read: what it held stays counted until the next snapshot, which the nightly refresh publishes
after the erasure.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import orjson

from candidates.read_gate import ReadGate
from graph.snapshot import Snapshot
from graph.snapshot.csr import run_bounds
from graph.snapshot.format import EVENT_CODE

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 << 20      # a segment is read this much at a time (its lines are parsed at once)


@dataclass(frozen=True)
class RecentShownConfig:
    refresh_s: float = 10.0            # a read older than this is read again (0: by every request itself)
    max_impressions: int = 50_000_000  # held at most (12 bytes each); past it the penalty waits for the snapshot
    # the backlog read before serving stops after this long and goes on in the background: a worker's boot
    # must stay well inside gunicorn's timeout (60 s) however long the snapshot has not been refreshed
    first_read_s: float = 10.0


Shown = tuple[str, float, object]   # (shown id, time, position): one impression of a viewer's, by id


def _merged(old: Mapping, new: Mapping[object, set[Shown]]) -> Mapping:
    """Impressions by viewer, `new` added to `old` (a new mapping: readers keep theirs)."""
    out = dict(old)
    for viewer, shown in new.items():
        out[viewer] = out.get(viewer, frozenset()) | shown
    return MappingProxyType(out)


def _by_id(shown: frozenset[Shown]) -> dict[str, int]:
    return dict(Counter(user_id for user_id, _, _ in shown))


@dataclass(frozen=True)
class _Runs:
    """Impressions of snapshot users as runs sorted by viewer (a few, merged as they grow), each with a
    32-bit fingerprint of its time and position; of users the snapshot does not hold (accounts since: the
    newcomer slots) by viewer; and of the viewers it does not hold (served off the store) by their ids.
    An impression logged twice (a retried write: the same users, time and position) counts once, as the
    snapshot's export counts it."""

    runs: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = ()
    newcomers: Mapping[int, frozenset[Shown]] = field(default_factory=lambda: MappingProxyType({}))
    others: Mapping[str, frozenset[Shown]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def size(self) -> int:
        return sum(int(v.size) for v, _, _ in self.runs) + sum(
            len(shown) for table in (self.newcomers, self.others) for shown in table.values())

    def added(self, viewer: np.ndarray, shown: np.ndarray, mark: np.ndarray, newcomers: Mapping[int, set[Shown]],
              others: Mapping[str, set[Shown]]) -> _Runs:
        runs = list(self.runs)
        if viewer.size:
            order = np.argsort(viewer, kind="stable")
            run = (viewer[order], shown[order], mark[order])
            # merge while the last run is no more than twice the new one: O(log n) runs, each impression
            # merged O(log n) times
            while runs and runs[-1][0].size <= 2 * run[0].size:
                last = runs.pop()
                v, s, m = (np.concatenate((a, b)) for a, b in zip(last, run, strict=True))
                order = np.argsort(v, kind="stable")
                run = (v[order], s[order], m[order])
            runs.append(run)
        return _Runs(tuple(runs), _merged(self.newcomers, newcomers), _merged(self.others, others))


class RecentImpressions:
    """Impressions appended to the event log dated after `after`, by viewer; `held`: the (viewer, shown user,
    whole second) of the snapshot's impressions dated after `after` (not counted again)."""

    def __init__(self, root: Path, snap: Snapshot, after: float, config: RecentShownConfig | None = None,
                 on_read: Callable[[bool, int], None] | None = None,
                 held: frozenset[tuple[int, int, float]] = frozenset()) -> None:
        self.root = root
        self.snap = snap
        self.after = after
        self.in_snapshot = held
        self.config = config or RecentShownConfig()
        self._held = _Runs()
        self._read: dict[str, tuple[int, int]] = {}   # segment name -> (inode, bytes read)
        self._gate = ReadGate(self._read_logged, "recent-impressions")
        self.on_read = on_read   # told of every read: whether it worked, how many are held (metrics)
        self.caught_up = False   # whether the last read reached the end of every segment
        self._budget_s: float | None = None   # the next read stops after this long (None: at the end)
        self._full_warned = False

    @property
    def size(self) -> int:
        """Impressions held."""
        return self._held.size

    def counts(self, viewer: int) -> dict[int, int]:
        """How often each snapshot user was shown to `viewer` (a snapshot index) since the snapshot."""
        self.refresh()
        parts = []
        for v, s, m in self._held.runs:
            lo, hi = run_bounds(v, viewer)
            parts.append((s[lo:hi].astype(np.int64) << 32) | m[lo:hi].astype(np.int64))
        if not parts:
            return {}
        once = np.unique(np.concatenate(parts))   # an impression logged twice counts once
        shown, n = np.unique(once >> 32, return_counts=True)
        return dict(zip(shown.tolist(), n.tolist(), strict=True))

    def newcomer_counts(self, viewer: int) -> Mapping[str, int]:
        """How often each user the snapshot does not hold was shown to `viewer`, by id."""
        self.refresh()
        return _by_id(self._held.newcomers.get(viewer, frozenset()))

    def others_counts(self, viewer_id: str) -> Mapping[str, int]:
        """How often each user was shown to a viewer the snapshot does not hold, by id."""
        self.refresh()
        return _by_id(self._held.others.get(viewer_id, frozenset()))

    def refresh(self, force: bool = False) -> bool:
        """Read what the log gained if the last read is older than `refresh_s` (or `force`): in the caller's
        thread when forced or with `refresh_s` 0 (True if read), else in a thread of its own while requests go
        on with the last read. A failed read is logged and tried again `refresh_s` later."""
        return self._gate.refresh(self.config.refresh_s, force or self.config.refresh_s == 0, force)

    @property
    def reading(self) -> threading.Thread | None:
        """The last read run in a thread of its own."""
        return self._gate.reading

    def _read_logged(self) -> bool:
        ok = False
        budget, self._budget_s = self._budget_s, None
        try:
            self.caught_up = self._read_new(math.inf if budget is None else time.monotonic() + budget)
            ok = True
        except Exception as exc:   # the penalty is an addition: lists are served with what was read
            log.warning("recent impressions: reading %s failed, keeping %d read so far: %s",
                        self.root, self.size, exc)
        if self.on_read is not None:
            try:
                self.on_read(ok, self.size)
            except Exception:   # a report must never fail the read
                log.exception("recent impressions: reporting a read failed")
        return ok

    def _read_new(self, deadline: float) -> bool:
        """What the segments gained since the last read; False when `deadline` (time.monotonic()) stopped it
        first (the next read goes on from there)."""
        segments = sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []
        stats = {}
        for seg in segments:
            try:
                stats[seg.name] = seg.stat()
            except FileNotFoundError:   # expired by another process since the listing
                continue
        self._read = {name: done for name, done in self._read.items() if name in stats}   # expired ones go
        for name, (ino, done) in self._read.items():
            st = stats[name]
            if st.st_ino != ino or st.st_size < done:
                # rewritten: erasure rewrites only segments settled for an hour (read whole here long since),
                # re-ingestion a file as it was. Taken as read: counted twice otherwise
                log.info("recent impressions: %s was rewritten; its %d bytes taken as read", name, st.st_size)
                self._read[name] = (st.st_ino, st.st_size)
        for name, st in stats.items():
            if st.st_mtime < self.after and name not in self._read:
                continue   # last written before the snapshot's newest impression: read by its export
            ino, done = self._read.get(name, (st.st_ino, 0))
            while done < st.st_size and not self._full():
                if time.monotonic() > deadline:
                    return False
                done = self._read_chunk(self.root / name, done, st.st_size, ino)
        return True

    def _full(self) -> bool:
        if self.size < self.config.max_impressions:
            return False
        if not self._full_warned:
            self._full_warned = True
            log.warning("recent impressions: %d held, the cap (PYMK_SEEN_MAX_IMPRESSIONS); the ones after it "
                        "count from the next snapshot", self.size)
        return True

    def _read_chunk(self, path: Path, start: int, end: int, ino: int) -> int:
        """Parse whole lines from `start` (at most CHUNK_BYTES); the offset after the last whole line."""
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(min(end - start, CHUNK_BYTES))
        cut = data.rfind(b"\n") + 1
        if cut == 0:   # a line still being written, read when whole; or one longer than a chunk, skipped
            if len(data) < CHUNK_BYTES:
                return end
            log.warning("%s: a line longer than %d bytes at byte %d skipped", path, CHUNK_BYTES, start)
            self._read[path.name] = (ino, start + len(data))
            return start + len(data)
        self._add(data[:cut], path)
        self._read[path.name] = (ino, start + cut)
        return start + cut

    def _add(self, data: bytes, path: Path) -> None:
        """The impressions in whole lines `data` dated after `after`, added (an unreadable line is skipped
        with a warning naming it)."""
        index = self.snap.build_index()
        viewers, shown, marks, newcomers, others = [], [], [], {}, {}
        for line in data.splitlines():
            if b"impression" not in line:   # most lines of a busy log are impressions; others are skipped unparsed
                continue
            try:
                obj = orjson.loads(line)
                if obj["type"] != "impression" or not (ts := float(obj["ts"])) > self.after:
                    continue
                src, dst, position = str(obj["src"]), str(obj["dst"]), obj.get("position")
                hash(position)   # a position no writer writes (a list) makes the line unreadable
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s: skipping an unreadable event log line (%s): %r", path, exc, line[:80])
                continue
            v = index.get(src)
            if v is None:   # a viewer newer than the snapshot: served off the store
                others.setdefault(src, set()).add((dst, ts, position))
                continue
            s = index.get(dst)
            if s is None:
                newcomers.setdefault(v, set()).add((dst, ts, position))
            elif self.in_snapshot and (v, s, math.floor(ts)) in self.in_snapshot:
                continue   # dated after `after` but in the snapshot: counted there
            else:
                viewers.append(v)
                shown.append(s)
                marks.append(hash((ts, position)) & 0xFFFFFFFF)
        self._held = self._held.added(np.array(viewers, np.int32), np.array(shown, np.int32),
                                      np.array(marks, np.uint32), newcomers, others)


def recent_impressions(root: Path, snap: Snapshot, config: RecentShownConfig,
                       on_read: Callable[[bool, int], None] | None = None) -> RecentImpressions:
    """The impressions logged since `snap` (see the module's docstring for which)."""
    imp = snap.events["type"] == EVENT_CODE["impression"]
    ts = snap.events["ts"][imp]
    bounds = [float(b) for b in (ts.max() if ts.size else None, snap.meta.get("accounts_read_at")) if b is not None]
    after = min(bounds, default=-math.inf)
    late = ts > after   # in the snapshot, dated after `after` (minutes of them; more only for clocks ahead)
    held = frozenset(zip(snap.events["src"][imp][late].tolist(), snap.events["dst"][imp][late].tolist(),
                         np.floor(ts[late]).tolist(), strict=True))
    recent = RecentImpressions(root, snap, after, config, on_read, held)
    start = time.perf_counter()
    recent._budget_s = config.first_read_s
    recent.refresh(force=True)   # in the caller's thread: a worker reads its backlog before it serves
    log.info("recent impressions: %d logged since the snapshot read in %.2fs", recent.size, time.perf_counter() - start)
    if not recent.caught_up:   # the rest in the background (0: by the next request)
        log.warning("recent impressions: the backlog since the snapshot is longer than %.0f s of reading (%d read); "
                    "the rest is read while serving (is the nightly refresh late?)", config.first_read_s, recent.size)
        recent._gate.next_read = -math.inf
        recent.refresh()
    return recent
