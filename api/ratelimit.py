"""Rate limits on validated identities, counted in storage every worker process shares.

Flask-Limiter does the limiting (fixed one-minute windows, 429 with Retry-After). Who is counted:
a request that needs a key (a write; with PYMK_API_AUTH=all any /v1 request) and carries a configured
one is counted against that key; everything else against the client address, so a client inventing a new key
per request is still one client. The counters live in `PYMK_API_RATE_LIMIT_STORAGE`: by default a
SQLite file in the data directory, shared by the gunicorn workers of one machine (the storage
below); for several machines, any storage `limits` supports (`redis://...`, `memcached://...`).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, current_app, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import Storage

from api.errors import error_body
from pymk.settings import Settings

UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class SqliteStorage(Storage):
    """Fixed-window counters in one SQLite file (WAL), safe across threads and processes.

    Each increment is one atomic UPSERT, so workers never lose a count; expired rows are purged now
    and then. URI: sqlite:///absolute/path.sqlite
    """

    STORAGE_SCHEME = ["sqlite"]  # noqa: RUF012 (the name limits' registry reads)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions, **options)
        if not uri or not uri.startswith("sqlite:///"):
            raise ValueError(f"expected sqlite:///absolute/path, got {uri!r}")
        self.path = Path(uri.removeprefix("sqlite://"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, count INTEGER, expiry REAL)")

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # counters, not records: losing the last ones to a crash is fine
            self._local.conn = conn
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        conn = self._conn()
        (count,) = conn.execute(
            "INSERT INTO counters (key, count, expiry) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN expiry <= ?4 THEN ?2 ELSE count + ?2 END, "
            "expiry = CASE WHEN expiry <= ?4 THEN ?3 ELSE expiry END RETURNING count",
            (key, amount, now + expiry, now)).fetchone()
        if random.random() < 0.001:  # keep the table to the live windows
            conn.execute("DELETE FROM counters WHERE expiry <= ?", (now,))
        return int(count)

    def get(self, key: str) -> int:
        row = self._conn().execute("SELECT count FROM counters WHERE key = ? AND expiry > ?",
                                   (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._conn().execute("SELECT expiry FROM counters WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        return self._conn().execute("SELECT 1").fetchone() == (1,)

    def reset(self) -> int | None:
        return self._conn().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._conn().execute("DELETE FROM counters WHERE key = ?", (key,))


def client_identity() -> str:
    """A configured API key on a request that needs one (a write; any /v1 request with PYMK_API_AUTH=all);
    the client address otherwise (an unknown key, or one a request did not need, is no identity)."""
    key = request.headers.get("X-API-Key")
    api = current_app.config["PYMK_SETTINGS"].api
    keyed = request.method in WRITE_METHODS or (api.auth == "all" and request.path.startswith("/v1/"))
    if keyed and key and key in api.api_keys:
        return f"key:{key}"
    return f"addr:{request.remote_addr or 'unknown'}"


def storage_uri(settings: Settings) -> str:
    return settings.api.rate_limit_storage or f"sqlite:///{(settings.data_dir / 'ratelimit.sqlite').resolve()}"


def install(app: Flask, settings: Settings) -> Limiter | None:
    """Rate-limit every endpoint but the probes; None when limits are off (PYMK_API_RATE_LIMIT=0)."""
    per_minute = settings.api.rate_limit_per_minute
    if per_minute <= 0:
        return None
    limiter = Limiter(client_identity, app=app, storage_uri=storage_uri(settings), strategy="fixed-window",
                      application_limits=[f"{per_minute} per minute"], headers_enabled=False,
                      application_limits_exempt_when=lambda: request.path in UNLIMITED_PATHS)

    # Flask-Limiter's own headers are off: its Retry-After would overwrite the one of other 503/429s
    @app.errorhandler(RateLimitExceeded)
    def _limited(err: RateLimitExceeded):
        reset_at = limiter.current_limit.reset_at if limiter.current_limit else time.time() + 60
        resp = jsonify(error_body("rate_limited", f"too many requests ({err.description}); slow down"))
        resp.headers["Retry-After"] = str(max(1, int(reset_at - time.time()) + 1))
        return resp, 429

    return limiter
