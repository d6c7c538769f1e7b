"""Wait for a blocking call at most a deadline, whatever the socket under it does.

The Neo4j driver reads with no timeout of its own: a server that stops answering without closing the
connection (frozen by a long GC pause, cut off by a network that drops packets, a failover) holds a read
until the server's `connection.recv_timeout_seconds` hint, 120 s by default, or forever on a server that
sends none. The server's own query timeout cannot fire while it is the server that is stuck. So the API's
store runs each call in a worker thread and waits for it at most a deadline; a call abandoned at its
deadline finishes (or fails) in the background and frees its thread. While one is still out, further
calls wait a shorter deadline (`wary_s`); while `max_stuck` are, they fail at once instead of adding
threads: a stalled server costs requests a fast error, not a thread each for two minutes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeadlineExceededError(Exception):
    """The call did not end within `deadline_s` (it goes on in the background)."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"no answer within {deadline_s:g} s")
        self.deadline_s = deadline_s


class TooManyStuckError(Exception):
    """`stuck` calls abandoned at their deadline are still waiting for an answer: refused at once."""

    def __init__(self, stuck: int) -> None:
        super().__init__(f"{stuck} earlier calls are still waiting for an answer past their deadline")
        self.stuck = stuck


class _Call(Generic[T]):
    __slots__ = ("abandoned", "done", "error", "finished", "fn", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = False   # under the runner's lock, with `abandoned`
        self.finished = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False


class DeadlineRunner:
    """A pool of daemon worker threads, grown on demand, that runs calls for callers who wait a deadline.

    Daemon threads: a call stuck on a dead socket never holds up the process's exit."""

    def __init__(self, max_stuck: int = 32, name: str = "deadline") -> None:
        self._max_stuck = max_stuck
        self._name = name
        self._reset()
        # a forked child has none of the parent's worker threads: it starts its own (a weak reference, so the
        # hook does not keep the runner alive)
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (runner := ref()) is not None and runner._reset())

    def _reset(self) -> None:
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._stuck = 0

    @property
    def stuck(self) -> int:
        """Calls abandoned at their deadline that have not ended yet."""
        return self._stuck

    def call(self, fn: Callable[[], T], deadline_s: float, wary_s: float | None = None) -> T:
        """fn()'s value or exception, if it ends within `deadline_s`; else DeadlineExceededError. While an
        earlier call is still out past its deadline (the other side has likely stopped answering), the
        deadline is at most `wary_s`: requests then learn it in that time, not each in the full deadline."""
        task: _Call[T] = _Call(fn)
        with self._lock:
            if self._stuck >= self._max_stuck:
                raise TooManyStuckError(self._stuck)
            if self._stuck and wary_s is not None:
                deadline_s = min(deadline_s, wary_s)
            if self._idle:
                self._idle -= 1
            else:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
        self._calls.put(task)
        if not task.finished.wait(deadline_s):
            with self._lock:
                if not task.done:   # else it ended in the instant between
                    task.abandoned = True
                    self._stuck += 1
                    raise DeadlineExceededError(deadline_s)
        if task.error is not None:
            raise task.error
        return task.value  # type: ignore[return-value]

    def _work(self) -> None:
        while True:
            task = self._calls.get()
            try:
                task.value = task.fn()
            except BaseException as exc:  # handed to the caller, who raises it
                task.error = exc
            with self._lock:
                task.done = True
                if task.abandoned:
                    self._stuck -= 1
                    log.info("a call abandoned at its deadline ended (%s); %d still out",
                             "failed" if task.error is not None else "answered", self._stuck)
                self._idle += 1
            task.finished.set()
