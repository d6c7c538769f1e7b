"""One typed settings object, built from the environment and passed explicitly."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymk.envvars import env_choice, env_edge_columns, env_float, env_int, env_slots, unknown_variables
from pymk.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)

_warned: set[str] = set()


@dataclass(frozen=True)
class Neo4jSettings:
    """Where the graph store lives. An external `uri` means: use it, start nothing."""

    uri: str | None = None
    user: str = "neo4j"
    password: str = ""
    database: str = "neo4j"
    # Local embedded server (used only when `uri` is None).
    home: Path = REPO_ROOT / "var" / "neo4j"
    host: str = "127.0.0.1"
    port: int = 7687
    heap_mb: int = 1024
    pagecache_mb: int = 512
    # Call the bundled launcher's procedures (pymk.mergeFriendships) when the server has them;
    # PYMK_NEO4J_PROCEDURES=0: always plain Cypher.
    procedures: bool = True
    # How long a request waits to reach the server before the store reports itself unavailable.
    connect_timeout_s: float = 3.0
    # How long one query of the API's store may run before the server ends it (a request's reads and
    # writes; batch jobs have no bound). 0: the server's own db.transaction.timeout.
    request_timeout_s: float = 10.0
    # Local server: its Bolt keep-alive interval. While a query runs the server sends a no-op this often,
    # and it tells the driver to give up on a connection silent for twice as long (a frozen server, a
    # network dropping packets); Neo4j's default, 60 s, would hold a request for 120 s.
    keep_alive_s: float = 5.0
    # The API's store: after a call found the server unreachable the slow way (it took the connect timeout
    # or longer: a stalled connection, a connect that timed out), calls fail at once for this long, then one
    # tries again. 0: no breaker (every request waits out the timeouts itself).
    breaker_cooldown_s: float = 5.0

    @property
    def external(self) -> bool:
        return self.uri is not None

    @property
    def bolt_uri(self) -> str:
        return self.uri or f"bolt://{self.host}:{self.port}"


SERVED_LOG_MODES = ("off", "ids", "features")
AUTH_MODES = ("writes", "all")
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}   # PYMK_TIME_UNIT: numeric times in the inputs


def log_format(env: Mapping[str, str]) -> str:
    """PYMK_LOG_FORMAT: "text" (lines for people) or "json" (one object a line, pymk/logs.py). Read before
    the rest of the settings, so that their own warnings come out in it."""
    return env_choice(dict(env), "PYMK_LOG_FORMAT", ("text", "json"), "text")


def default_workers() -> int:
    """`pymk serve` worker processes: one per core, at most 8 (each with DEFAULT_THREADS threads: one
    computes while the other waits on Neo4j). More processes or threads on the same cores only add
    GIL hand-offs and cache misses: on 2 cores, 4 x 4 spent ~20% more CPU a request than 2 x 2 and its
    p99 at 200 req/s of requests ranked on request was 3-4x higher (bench/RESULTS.md)."""
    return min(8, os.cpu_count() or 1)


DEFAULT_THREADS = 2


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API. Writes need an X-API-Key from `api_keys`; with none configured, writes are refused."""

    api_keys: frozenset[str] = frozenset()
    # who needs a key: "writes" (reads are open: a service only the platform's backend can reach), or "all"
    # (suggestions too: they name a user's friends of friends and mutual friends); probes, metrics and the
    # OpenAPI description stay open either way
    auth: str = "writes"
    max_request_bytes: int = 1 << 20
    rate_limit_per_minute: int = 6000          # per client (API key or address); 0 = off
    rate_limit_storage: str | None = None      # limits storage URI shared by the workers (None: SQLite in data_dir)
    default_limit: int = 20
    max_limit: int = 100
    reload_check_s: float = 5.0                # how often to look for a newer snapshot to hot-swap
    ab_buckets: tuple[str, ...] = ("control", "treatment")
    explore_share: float = 0.05                # share of slots given to exploration (marked in the response)
    workers: int = field(default_factory=default_workers)  # `pymk serve` processes
    threads: int = DEFAULT_THREADS             # threads per worker process
    # what each suggestions response leaves in $PYMK_DATA_DIR/served (one file per worker and hour):
    # "ids" (viewer, candidates, positions, sources, scores), "features" (and every candidate's
    # ranking features: training on exactly what serving saw), or "off"; files older than the
    # retention are deleted as the workers start new ones (0: kept for ever)
    served_log: str = "ids"
    served_log_retention_h: float = 24.0
    # accounts newer than the served snapshot are suggested to the friends of their friends in these 1-based
    # slots of a list (candidates/newcomers.py; () = off), from an index read again every `newcomer_refresh_s`
    # (what changed since the last read) and whole every `newcomer_full_read_s`
    newcomer_slots: tuple[int, ...] = (3, 8)
    newcomer_refresh_s: float = 30.0
    newcomer_full_read_s: float = 900.0
    # the re-rank's seen penalty also counts the impressions logged since the snapshot, read from the event
    # log by each worker every `seen_refresh_s` (candidates/recent_shown.py; 0: by every request itself), at
    # most `seen_max_impressions` of them (12 bytes each; 0: only the snapshot's count)
    seen_refresh_s: float = 10.0
    seen_max_impressions: int = 50_000_000
    seen_first_read_s: float = 10.0   # of that backlog, read before a worker serves; the rest in the background

    def check_servable(self) -> None:
        """ConfigError for settings no API could serve with (checked before any server process starts)."""
        if self.auth == "all" and not self.api_keys:
            raise ConfigError("PYMK_API_AUTH=all needs keys in PYMK_API_KEYS (none are set: no request could be "
                              "served)")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, in one place. Build with `Settings.from_env()`."""

    data_dir: Path = REPO_ROOT / "var"
    neo4j: Neo4jSettings = field(default_factory=Neo4jSettings)
    ingest_batch_size: int = 10_000
    api: ApiSettings = field(default_factory=ApiSettings)
    # accepted timestamps everywhere (files, API, event log): from `ts_earliest` (epoch seconds) to
    # `ts_max_future_s` ahead of the clock
    ts_earliest: float = 0.0
    ts_max_future_s: float = 86_400.0
    ts_unit_s: float = 1.0     # seconds per unit of a numeric time in files and API bodies (PYMK_TIME_UNIT)
    edge_columns: tuple[str, ...] | None = None   # edge lists' fields by position (PYMK_EDGE_COLUMNS; None: inferred)
    log_format: str = "text"   # PYMK_LOG_FORMAT (pymk/logs.py)
    # how many days of the event log a snapshot holds, counted back from its newest event (0: all of it):
    # the training examples, interaction counts and activity features read them, and the nightly export's
    # work grows with this window instead of with every event ever logged
    event_history_days: float = 365.0
    # how many days event-log segments are kept (0: for ever): the nightly refresh deletes the segments
    # whose every event is older (data kept no longer than it is used; the served log has its own setting)
    event_retention_days: float = 0.0
    # at most this many impression examples (and as many send examples) train the ranker, drawn as whole
    # (viewer, day) groups when the log holds more (0: all): bounds the ranker stage's time and memory
    ranker_max_impressions: int = 2_000_000

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def embeddings_dir(self) -> Path:
        return self.data_dir / "embeddings"

    @property
    def ranker_dir(self) -> Path:
        return self.data_dir / "ranker"

    @property
    def candidates_dir(self) -> Path:
        return self.data_dir / "candidates"

    @property
    def artifact_dirs(self) -> dict[str, Path]:
        """Every versioned artifact store the API serves from, by name, in the order a refresh makes them."""
        return {"snapshot": self.snapshot_dir, "embeddings": self.embeddings_dir, "ranker": self.ranker_dir,
                "candidates": self.candidates_dir}

    @property
    def event_log_dir(self) -> Path:
        return self.data_dir / "events"

    @property
    def served_log_dir(self) -> Path:
        return self.data_dir / "served"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        for name in unknown_variables(env):
            if name not in _warned:  # once a process: jobs build settings more than once
                _warned.add(name)
                log.warning("ignoring %s: no pymk setting reads it (README, \"Configuration\")", name)
        data_dir = Path(env.get("PYMK_DATA_DIR") or REPO_ROOT / "var").resolve()
        port = env_int(env, "PYMK_NEO4J_PORT", 7687)
        if not 0 < port < 65536:
            raise ConfigError(f"PYMK_NEO4J_PORT must be a TCP port (got {port})")
        neo = Neo4jSettings(
            uri=env.get("NEO4J_URI") or None,
            user=env.get("NEO4J_USER", "neo4j"),
            password=env.get("NEO4J_PASSWORD", ""),
            database=env.get("NEO4J_DATABASE", "neo4j"),
            home=Path(env.get("PYMK_NEO4J_HOME") or data_dir / "neo4j").resolve(),
            host=env.get("PYMK_NEO4J_HOST", "127.0.0.1"),
            port=port,
            heap_mb=env_int(env, "PYMK_NEO4J_HEAP_MB", 1024, lo=64),
            pagecache_mb=env_int(env, "PYMK_NEO4J_PAGECACHE_MB", 512, lo=8),
            procedures=env.get("PYMK_NEO4J_PROCEDURES", "1") not in ("0", "false", "no"),
            connect_timeout_s=env_float(env, "PYMK_NEO4J_CONNECT_TIMEOUT_S", 3.0, 0.1, 600.0),
            request_timeout_s=env_float(env, "PYMK_NEO4J_REQUEST_TIMEOUT_S", 10.0, 0.0, 3600.0),
            keep_alive_s=env_float(env, "PYMK_NEO4J_KEEP_ALIVE_S", 5.0, 1.0, 3600.0),
            breaker_cooldown_s=env_float(env, "PYMK_NEO4J_BREAKER_COOLDOWN_S", 5.0, 0.0, 3600.0),
        )
        batch = env_int(env, "PYMK_INGEST_BATCH", 10_000, lo=1)
        keys = frozenset(k.strip() for k in env.get("PYMK_API_KEYS", "").split(",") if k.strip())
        api = ApiSettings(
            api_keys=keys,
            auth=env_choice(env, "PYMK_API_AUTH", AUTH_MODES, "writes"),
            max_request_bytes=env_int(env, "PYMK_API_MAX_REQUEST_BYTES", 1 << 20, lo=1024),
            rate_limit_per_minute=env_int(env, "PYMK_API_RATE_LIMIT", 6000, lo=0),
            rate_limit_storage=env.get("PYMK_API_RATE_LIMIT_STORAGE") or None,
            explore_share=env_float(env, "PYMK_EXPLORE_SHARE", 0.05, 0.0, 1.0),
            workers=env_int(env, "PYMK_API_WORKERS", default_workers(), lo=1),
            threads=env_int(env, "PYMK_API_THREADS", DEFAULT_THREADS, lo=1),
            served_log=env_choice(env, "PYMK_SERVED_LOG", SERVED_LOG_MODES, "ids"),
            served_log_retention_h=env_float(env, "PYMK_SERVED_LOG_RETENTION_H", 24.0, 0.0, 1e6),
            newcomer_slots=env_slots(env, "PYMK_NEWCOMER_SLOTS", (3, 8)),
            newcomer_refresh_s=env_float(env, "PYMK_NEWCOMER_REFRESH_S", 30.0, 0.0, 86_400.0),
            newcomer_full_read_s=env_float(env, "PYMK_NEWCOMER_FULL_READ_S", 900.0, 0.0, 7 * 86_400.0),
            seen_refresh_s=env_float(env, "PYMK_SEEN_REFRESH_S", 10.0, 0.0, 86_400.0),
            seen_max_impressions=env_int(env, "PYMK_SEEN_MAX_IMPRESSIONS", 50_000_000, 0),
            seen_first_read_s=env_float(env, "PYMK_SEEN_FIRST_READ_S", 10.0, 0.0, 3600.0),
        )
        return cls(data_dir=data_dir, neo4j=neo, ingest_batch_size=batch, api=api,
                   ts_earliest=env_float(env, "PYMK_TS_EARLIEST", 0.0, -1e12, 1e12),
                   ts_max_future_s=env_float(env, "PYMK_TS_MAX_FUTURE_S", 86_400.0, 0.0, 1e9),
                   ts_unit_s=TIME_UNITS[env_choice(env, "PYMK_TIME_UNIT", TIME_UNITS, "s")],
                   edge_columns=env_edge_columns(env),
                   log_format=log_format(env),
                   event_history_days=env_float(env, "PYMK_EVENT_HISTORY_DAYS", 365.0, 0.0, 36_500.0),
                   event_retention_days=env_float(env, "PYMK_EVENT_RETENTION_DAYS", 0.0, 0.0, 36_500.0),
                   ranker_max_impressions=env_int(env, "PYMK_RANKER_MAX_IMPRESSIONS", 2_000_000, lo=0))

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)
