"""A small per-client token bucket (per process). Enough to stop a runaway client on one node."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int, max_clients: int = 100_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 6.0)  # bursts of up to 10 s worth
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if len(self._buckets) >= self.max_clients and client not in self._buckets:
                self._buckets.clear()
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            return allowed
