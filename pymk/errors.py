"""Named exceptions shared across packages. Messages quote the bad value."""

from __future__ import annotations

import time


class PymkError(Exception):
    """Base class for every error pymk raises on purpose."""


class ConfigError(PymkError):
    """A setting from the environment or the command line is invalid."""


class UnknownUserError(PymkError, LookupError):
    """A user id that the graph does not contain."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"unknown user {user_id!r}")
        self.user_id = user_id


class AccountReplacedError(PymkError, LookupError):
    """The served snapshot's record of a user id is a former account's: the id was deleted after the
    snapshot read the accounts and created again, so whoever holds it now is someone else."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} was deleted and created again after the served snapshot was made: "
                         f"the snapshot describes the former account")
        self.user_id = user_id


class FriendsChangedError(PymkError, LookupError):
    """The viewer had almost no friends in the served snapshot and has made some since: the snapshot's
    sources would serve it as a user without friends, so it is served as a user newer than the snapshot."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} had few friends in the served snapshot and has made new ones since")
        self.user_id = user_id


class InputFormatError(PymkError, ValueError):
    """A whole input file cannot be read (bad header, unknown format)."""


class EvaluationError(PymkError, ValueError):
    """An input that reads but cannot be evaluated (no test users after the cut)."""


class TooLittleHistoryError(PymkError, ValueError):
    """A graph too small or too young for a learning job (embeddings, a ranker): the nightly refresh skips the
    job's stage instead of failing."""


class ArtifactError(PymkError):
    """A versioned artifact is missing, incomplete or fails its checks."""


class ServerError(PymkError):
    """The local Neo4j server could not be built, started or stopped."""


class SparkUnavailableError(PymkError):
    """No Spark session could be had (the master or the Spark Connect server cannot be reached)."""

    def __init__(self, where: str, cause: Exception) -> None:
        lines = [line.strip(" :") for line in str(cause).splitlines() if line.strip(" :")][:2]
        detail = " ".join(lines)[:400] or cause.__class__.__name__
        super().__init__(f"cannot start a Spark session on {where} (is it up and reachable from here?): {detail}")
        self.where = where


class GraphStoreUnavailableError(PymkError):
    """The graph store (Neo4j) cannot be reached right now; retrying later may succeed."""

    def __init__(self, uri: str, cause: Exception, message: str | None = None) -> None:
        super().__init__(message or f"graph store {uri} unavailable: {cause.__class__.__name__}: {cause}")
        self.uri = uri


class GraphStoreTimeoutError(GraphStoreUnavailableError):
    """A query ran past the store's per-query bound (PYMK_NEO4J_REQUEST_TIMEOUT_S) and the server ended it."""

    def __init__(self, uri: str, limit_s: float, cause: Exception) -> None:
        super().__init__(uri, cause, f"graph store {uri}: a query ran past its {limit_s:g} s bound and was ended "
                                     f"({getattr(cause, 'code', None) or cause.__class__.__name__})")
        self.limit_s = limit_s


class GraphStoreCircuitOpenError(GraphStoreUnavailableError):
    """The graph store was found unreachable moments ago: this call was not tried (graph/breaker.py)."""

    def __init__(self, uri: str, cause: str, wait_s: float) -> None:
        super().__init__(uri, RuntimeError(cause), f"graph store {uri} was unreachable moments ago ({cause}); "
                                                   f"not tried again for another {wait_s:.1f} s")
        self.wait_s = wait_s


class EventLogUnavailableError(PymkError):
    """A log segment cannot be written (disk full, permissions); nothing of the failed write is kept."""

    def __init__(self, path: object, cause: OSError) -> None:
        super().__init__(f"cannot write {path}: {cause.strerror or cause}")
        self.path = path


class JobRunningError(PymkError):
    """Another run of a job that must not overlap itself holds its lock; this run did not start."""

    def __init__(self, job: str, lock: object, holder: dict) -> None:
        who = (f"pid {holder['pid']}" + (f" on {holder['host']}" if "host" in holder else "")
               if "pid" in holder else "holder unknown")
        since = holder.get("started_at")
        when = time.strftime(", since %Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if isinstance(since, float) else ""
        super().__init__(f"another {job} is running ({who}{when}; lock {lock}); this one did not start")
        self.holder = holder
