"""When an in-memory index an API worker keeps beside the snapshot is read again (one read at a time).

Used by the newcomer index (accounts written since the snapshot, read from the graph store) and by the
impressions logged since it (read from the event log): a request that finds the last read older than
`refresh_s` starts the next one, in a thread of its own, and goes on with the last read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class ReadGate:
    """Runs `read` (which returns whether it worked) when due, one run at a time."""

    def __init__(self, read: Callable[[], bool], name: str) -> None:
        self.name = name
        self.next_read = -math.inf      # time.monotonic() of the next read (a read may push it later)
        self.reading: threading.Thread | None = None   # the last read run in a thread of its own
        self._read = read
        self._lock = threading.Lock()

    def refresh(self, refresh_s: float, inline: bool, force: bool = False) -> bool:
        """Read if the last read is older than `refresh_s` (or `force`). `inline`: in the caller's thread,
        waiting for a read already running (True if read); else in a thread of its own (False), or not at all
        while one runs."""
        if not force and time.monotonic() < self.next_read:
            return False
        if not self._lock.acquire(blocking=inline):
            return False
        if not force and time.monotonic() < self.next_read:
            self._lock.release()
            return False
        self.next_read = time.monotonic() + refresh_s
        if inline:
            return self._run()
        self.reading = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.reading.start()
        return False

    def _run(self) -> bool:
        try:
            return self._read()
        finally:
            self._lock.release()
