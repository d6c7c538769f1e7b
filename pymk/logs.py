"""Log records as lines for people (the default) or, with PYMK_LOG_FORMAT=json, one JSON object a line
for a log pipeline (Loki, Elasticsearch, Cloud Logging): time, level, logger, message, the request's id
inside an API request, and the traceback of an exception as one field instead of extra lines.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

import orjson

# the id of the API request a thread is serving (set by the app around each request; None outside one)
REQUEST_ID: ContextVar[str | None] = ContextVar("pymk_request_id", default=None)
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; keys: ts (UTC, ISO 8601 with ms), level, logger, message, and when set
    request_id, exc (traceback text), stack."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rid = REQUEST_ID.get()
        if rid is not None:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def setup(level: int, fmt: str = "text") -> None:
    """Root logging to stderr at `level`, as text or JSON lines (`fmt`, one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level, handlers=[handler])   # a no-op where logging is set up already (tests)
