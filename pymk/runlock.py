"""One run at a time of a job that must not overlap itself (the nightly refresh).

An exclusive `flock` on a lock file: the operating system drops it when the holder's process ends,
however it ends, so a crashed run never leaves a stale lock behind. The holder writes who it is into
the file, so a second run can say what it found instead of only "busy".
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymk.errors import JobRunningError

log = logging.getLogger(__name__)


@contextmanager
def exclusive(path: Path, job: str, **about: object) -> Iterator[None]:
    """Hold `path`'s lock for the block; JobRunningError at once if another process holds it.
    `about`: what to tell a second run about this one (e.g. its run id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise JobRunningError(job, path, _parse(f.read())) from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(),
                            **about}))
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)   # the next holder writes its own; an empty file reads "no one"
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _parse(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def holder(path: Path) -> dict | None:
    """Who holds `path`'s lock now, without taking it (a check that took it, even briefly, could make a
    run starting in that instant stop): what the holder wrote, unless its file is empty or it names a
    process of this host that is gone (a holder killed before it could empty the file)."""
    try:
        about = _parse(path.read_text())
    except FileNotFoundError:
        return None
    if not about:
        return None
    if about.get("host") == socket.gethostname() and isinstance(about.get("pid"), int):
        try:
            os.kill(about["pid"], 0)
        except ProcessLookupError:
            return None
        except PermissionError:   # alive, another user's
            pass
    return about

