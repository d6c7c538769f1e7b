"""Timestamps: the window every time read anywhere must fall in, the unit of numeric times in the inputs,
and the parser of a file's time field."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

PLAUSIBLE_EPOCH_S = 1e8   # 1973: a time in a finer unit read as seconds lands near 1970, before this
OUTSIDE_WINDOW = "outside the accepted window"   # what a refused time's error says (callers look for it)
NULL_TIMES = {"", "\\n", "null", "none", "na", "n/a"}   # a time column's "unknown" (SQL's \N): the tie, no time


@dataclass(frozen=True)
class TimeWindow:
    """The timestamps accepted anywhere (files, the API, the event log): none before `earliest`
    (default 1970-01-01), none more than `max_future_s` ahead of the clock (default a day).
    `unit_s`: seconds per unit of a numeric time in the inputs (0.001: epoch milliseconds); every time
    is kept in seconds from there on."""

    earliest: float = 0.0
    max_future_s: float = 86_400.0
    unit_s: float = 1.0

    def check(self, ts: float, raw: object) -> float:
        latest = time.time() + self.max_future_s
        if not self.earliest <= ts <= latest:
            unit = finer_unit(ts, self.earliest, latest) if self.unit_s == 1.0 else None
            hint = (f" ({unit}? numeric times are read as seconds since 1970; PYMK_TIME_UNIT={FINER[unit][0]} "
                    f"reads them as {unit})" if unit else "")
            raise ValueError(f"timestamp {raw!r} is {OUTSIDE_WINDOW} [{self.earliest:.0f}, now + "
                             f"{self.max_future_s:.0f} s]{hint}")
        return ts


# finer units of epoch times: their name in a hint -> (PYMK_TIME_UNIT's value, units per second)
FINER = {"milliseconds": ("ms", 1e3), "microseconds": ("us", 1e6), "nanoseconds": ("ns", 1e9)}


def finer_unit(ts: float, earliest: float, latest: float) -> str | None:
    """The finer unit that makes a plausible epoch time of `ts` read as seconds (after 1973, before
    `latest`), if one does: a log's milliseconds, a tracer's nanoseconds."""
    return next((name for name, (_, per_s) in FINER.items()
                 if max(earliest, PLAUSIBLE_EPOCH_S) <= ts / per_s <= latest), None)


_WINDOW = [TimeWindow()]


def set_time_window(window: TimeWindow) -> None:
    """Use `window` for every timestamp read from now on (the CLI and the API set it from Settings)."""
    _WINDOW[0] = window


def time_window() -> TimeWindow:
    return _WINDOW[0]


def parse_timestamp(raw: str) -> float:
    """Epoch seconds from a number or an ISO 8601 string inside the accepted window; ValueError
    quoting `raw` otherwise."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"bad timestamp {raw!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return _WINDOW[0].check(dt.timestamp(), raw)
    if not math.isfinite(value):
        raise ValueError(f"bad timestamp {raw!r}")
    return _WINDOW[0].check(value * _WINDOW[0].unit_s, raw)
