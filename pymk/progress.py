"""Progress of long jobs: a live bar on a terminal, plain lines in a log file.

A tqdm bar redraws itself with carriage returns, which a terminal folds into one line but a log
file (cron, a Kubernetes pod, CI) keeps as one ever-growing line. When stderr is not a terminal the
same counts are written as whole lines, at most one every `LOG_EVERY_S` seconds plus the last.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

LOG_EVERY_S = 30.0


class _Lines:
    """A stream for tqdm that ends each refresh with a newline instead of starting it with a return."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.strip("\r\n")
        if line.strip():
            self.stream.write(line.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, stream: TextIO | None = None,
                 **kwargs: Any) -> tqdm:
    """tqdm over `iterable` (or a manual bar with `total`), on `stream` (stderr by default); disabled
    when not `enabled`. Not on a terminal: whole lines, counts and rates only, every 30 s and at the end."""
    stream = stream or sys.stderr
    if enabled and not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs["file"] = _Lines(stream)
        kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.0)), LOG_EVERY_S)
        kwargs["ncols"] = 0        # no meter, which only a terminal redraws well
        kwargs["ascii"] = True
    else:
        kwargs.setdefault("file", stream)
    return tqdm(iterable, disable=not enabled, **kwargs)
