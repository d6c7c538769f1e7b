"""A circuit breaker for the API's graph store: once the server has been found unreachable the slow way
(a connection that stopped answering, a connect that timed out), calls fail at once for a cooldown instead
of each waiting that long again; then one call at a time tries the server, and its success closes it.

Fast failures (a refused connection, one stale pooled connection after a restart) never open it: they cost
a request milliseconds, and the next call may well succeed. Batch jobs have no breaker (they stop at their
first failure anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    """States: closed (calls go through), open (calls fail at once until `cooldown_s` has passed since the
    failure that opened it), half-open (one trial call goes through, the others fail at once)."""

    def __init__(self, *, cooldown_s: float, slow_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """`slow_s`: a failure that took at least this long opens the breaker (the connect timeout: what a
        server that cannot be reached costs each call); `cooldown_s` > 0: how long it stays open."""
        if cooldown_s <= 0 or slow_s < 0:
            raise ValueError(f"cooldown_s must be > 0 and slow_s >= 0 (got {cooldown_s}, {slow_s})")
        self.cooldown_s = cooldown_s
        self.slow_s = slow_s
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None   # None: closed
        self._cause = ""
        self._trial = False                    # a trial call is out (half-open)
        self.rejected = 0                      # calls failed at once since this process started

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def admit(self) -> tuple[bool, float, bool]:
        """Before a call: (go ahead?, seconds until a trial may go when not, is this call the trial?). A
        call that goes ahead must report its outcome with `succeeded()` or `failed()`, saying if it was
        the trial."""
        if self._opened_at is None:   # closed: no lock on the normal path
            return True, 0.0, False
        with self._lock:
            if self._opened_at is None:
                return True, 0.0, False
            wait = self._opened_at + self.cooldown_s - self._clock()
            if wait <= 0 and not self._trial:
                self._trial = True
                return True, 0.0, True
            self.rejected += 1
            return False, max(wait, 0.0), False

    def succeeded(self) -> None:
        """The server answered (any answer, an error of the query included): closed."""
        if self._opened_at is None:
            return
        with self._lock:
            if self._opened_at is not None:
                log.warning("graph store answers again: calls go through (open %.1f s, %d failed at once so far)",
                            self._clock() - self._opened_at, self.rejected)
            self._opened_at, self._trial = None, False

    def failed(self, took_s: float, cause: Exception, trial: bool) -> None:
        """The server could not be reached; the call spent `took_s` finding that out. A failed trial opens
        the breaker again, as does any slow failure of a closed one; a call let through before it opened
        and failing after changes nothing."""
        with self._lock:
            if trial:
                self._trial = False
            elif self._opened_at is not None or took_s < self.slow_s:
                return
            if self._opened_at is None:
                log.warning("graph store unreachable after %.1f s (%s): failing calls at once for %g s",
                            took_s, cause.__class__.__name__, self.cooldown_s)
            self._opened_at, self._cause = self._clock(), cause.__class__.__name__

    @property
    def cause(self) -> str:
        return self._cause
