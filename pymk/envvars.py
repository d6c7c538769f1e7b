"""Reading PYMK_* environment variables: typed values with errors that name the variable and the
bad value, and the list of every variable something reads (so a misspelt one is reported, not ignored)."""

from __future__ import annotations

import difflib
from collections.abc import Collection

from pymk.errors import ConfigError

# Every PYMK_* variable something reads: the settings (pymk/settings.py), and the shell scripts' own (scripts/*.sh).
# Any other PYMK_* name in the environment is most likely a typo, which would otherwise be ignored.
KNOWN_VARIABLES = frozenset({
    "PYMK_DATA_DIR", "PYMK_NEO4J_HOME", "PYMK_NEO4J_HOST", "PYMK_NEO4J_PORT", "PYMK_NEO4J_HEAP_MB",
    "PYMK_NEO4J_PAGECACHE_MB", "PYMK_NEO4J_PROCEDURES", "PYMK_NEO4J_CONNECT_TIMEOUT_S", "PYMK_NEO4J_KEEP_ALIVE_S",
    "PYMK_NEO4J_BREAKER_COOLDOWN_S", "PYMK_NEO4J_REQUEST_TIMEOUT_S", "PYMK_INGEST_BATCH", "PYMK_API_AUTH",
    "PYMK_LOG_FORMAT", "PYMK_EVENT_HISTORY_DAYS", "PYMK_EVENT_RETENTION_DAYS",
    "PYMK_RANKER_MAX_IMPRESSIONS",
    "PYMK_API_KEYS", "PYMK_API_MAX_REQUEST_BYTES", "PYMK_API_RATE_LIMIT", "PYMK_API_RATE_LIMIT_STORAGE",
    "PYMK_EXPLORE_SHARE", "PYMK_API_WORKERS", "PYMK_API_THREADS", "PYMK_SERVED_LOG",
    "PYMK_SERVED_LOG_RETENTION_H", "PYMK_TS_EARLIEST", "PYMK_TS_MAX_FUTURE_S", "PYMK_TIME_UNIT",
    "PYMK_EDGE_COLUMNS",
    "PYMK_NEWCOMER_SLOTS", "PYMK_NEWCOMER_REFRESH_S", "PYMK_NEWCOMER_FULL_READ_S",
    "PYMK_SEEN_REFRESH_S", "PYMK_SEEN_MAX_IMPRESSIONS", "PYMK_SEEN_FIRST_READ_S",
    "PYMK_CACHE", "PYMK_DEMO_USERS", "PYMK_DEMO_PORT", "PYMK_TEST_DATA_DIR", "PYMK_TEST_NEO4J_PORT",
})


def unknown_variables(env: dict[str, str]) -> list[str]:
    """PYMK_* names in `env` that no setting reads, each with the known name it is closest to."""
    found = []
    for name in sorted(n for n in env if n.startswith("PYMK_") and n not in KNOWN_VARIABLES):
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1)
        found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


def _number(env: dict[str, str], name: str, cast: type, kind: str) -> int | float | None:
    """The variable read as `cast` (None: unset or empty), or a ConfigError naming it and its value."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {kind} (got {raw!r})") from exc


def env_int(env: dict[str, str], name: str, default: int, lo: int | None = None) -> int:
    value = _number(env, name, int, "an integer")
    if value is None:
        return default
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo} (got {value})")
    return value


def env_float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    value = _number(env, name, float, "a number")
    if value is None:
        return default
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi} (got {value})")
    return value


def env_slots(env: dict[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Comma-separated 1-based list positions, distinct ("" or "0": none)."""
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip() in ("", "0"):
        return ()
    try:
        slots = tuple(int(x) for x in raw.split(","))
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated list positions such as 3,8 (got {raw!r})") from exc
    if any(s < 1 for s in slots) or len(set(slots)) != len(slots):
        raise ConfigError(f"{name} must be distinct positions from 1 up (got {raw!r})")
    return tuple(sorted(slots))


def env_choice(env: dict[str, str], name: str, choices: Collection[str], default: str) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def env_edge_columns(env: dict[str, str], name: str = "PYMK_EDGE_COLUMNS") -> tuple[str, ...] | None:
    """An edge list's fields by position, comma-separated: `src` and `dst` once each, `ts` at most once, any
    other word a field not read (`src,dst,weight`). None: unset or empty (each file says, docs/ingestion.md)."""
    raw = env.get(name, "")
    if not raw.strip():
        return None
    fields = tuple(f.strip().lower() for f in raw.split(","))
    if fields.count("src") != 1 or fields.count("dst") != 1 or fields.count("ts") > 1 or "" in fields:
        raise ConfigError(f"{name} must name each field by position, src and dst once each and ts at most "
                          f"once, such as src,dst,weight or ts,src,dst (got {raw!r})")
    return fields
