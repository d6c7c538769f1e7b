"""Every candidate source at once, each under the request's time budget: late or failing is skipped, never fatal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from candidates.base import CandidateSource
from candidates.types import OVER_BUDGET, Recommendation

log = logging.getLogger(__name__)
T = TypeVar("T")


class SourceRunner:
    """Runs `sources` for one viewer under `budget_s`; `concurrency`: requests served at once (server threads),
    so the pool has a thread per source for each of them and one request never waits on another's."""

    def __init__(self, sources: Sequence[CandidateSource], budget_s: float, concurrency: int) -> None:
        self.sources = list(sources)
        self.budget_s = budget_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.sources) * concurrency),
                                        thread_name_prefix="source")

    def run(self, run: Callable[[CandidateSource], T], user: int, rec: Recommendation) -> dict[str, T | None]:
        """`run` on every source at once under the time budget; None for a source late or failing (named in
        `rec.skipped_sources`, its time in `rec.timings_ms`).

        Sources marked `inline` (in-memory, bounded work: a few ms at most) run in the request's own
        thread while the others run in the pool: handing a millisecond of numpy to another thread and
        back costs a large share of that millisecond in thread switches when every core is busy."""
        started = time.perf_counter()
        pooled = [s for s in self.sources if not getattr(s, "inline", False)]
        futures = {self._pool.submit(_timed, run, s): s for s in pooled}
        results: dict[str, tuple[T, float] | BaseException] = {}
        for source in self.sources:
            if getattr(source, "inline", False):
                try:
                    results[source.name] = _timed(run, source)
                except Exception as exc:
                    results[source.name] = exc
        left = max(0.0, self.budget_s - (time.perf_counter() - started))
        _, late = wait(futures, timeout=left) if futures else (set(), set())
        for fut, source in futures.items():
            if fut not in late:
                results[source.name] = fut.exception() or fut.result()
        out: dict[str, T | None] = {}
        for source in self.sources:
            out[source.name] = None
            got = results.get(source.name)
            if got is None:
                rec.skip(source.name, f"over budget ({self.budget_s * 1000:.0f} ms)", OVER_BUDGET)
                log.warning("source %s skipped for user %d: over its time budget", source.name, user)
            elif isinstance(got, BaseException):  # a broken source degrades the answer, never fails it
                rec.failed(source.name, got)
                log.error("source %s failed for user %d", source.name, user, exc_info=got)
            else:
                out[source.name], rec.timings_ms[source.name] = got
        rec.timings_ms["generate"] = (time.perf_counter() - started) * 1000
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(run: Callable[[CandidateSource], T], source: CandidateSource) -> tuple[T, float]:
    start = time.perf_counter()
    result = run(source)
    return result, (time.perf_counter() - start) * 1000
