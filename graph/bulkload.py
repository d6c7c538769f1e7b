"""Initial load of a large graph into an empty local Neo4j with Neo4j's offline importer.

`pymk ingest` MERGEs batches over Bolt, which is what increments need (idempotent, online) but is
bound by Neo4j's transactional commit path. A first load of millions of friendships into an empty
database goes through `neo4j-admin database import full` instead (the same jars the launcher runs
on): the inputs are read and validated by the same readers as `pymk ingest` (bad rows reported with
file and line, good rows kept), normalised to exactly what MERGE ingestion would have stored (one
relationship per pair in canonical direction, earliest `since`, later user rows overriding the
fields they give), written as importer CSVs, and imported while the server is stopped. The result
is the same graph `pymk ingest users` + `pymk ingest edges` would build; later files go through
`pymk ingest` as usual.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph import server
from graph.coded_edges import read_coded_file, standing_rows
from graph.readers import ByteCounter, RejectCounter, RowError, read_users
from graph.records import PROFILE_FIELDS
from pymk.errors import PymkError
from pymk.progress import progress_bar
from pymk.settings import Neo4jSettings

log = logging.getLogger(__name__)
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
_TYPES = {"created_at": "double", "lat": "double", "lon": "double", "opted_out": "boolean", "deactivated": "boolean"}


class InitialLoadError(PymkError):
    """The offline import cannot run here (external server, non-empty database) or failed."""


@dataclass
class InitialLoadReport(RejectCounter):
    users: int = 0
    friendships: int = 0
    rows_read: int = 0
    edge_rows: int = 0
    seconds: float = 0.0
    import_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.edge_rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"initial load: {self.rows_read} rows read, {self.rejected} rejected; {self.users} users, "
                f"{self.friendships} friendships from {self.edge_rows} edge rows in {self.seconds:.1f}s "
                f"({self.rows_per_second:,.0f} edge rows/s; importer {self.import_seconds:.1f}s)")


class _Ids:
    """External user id -> dense importer id, in first-seen order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, uid: str) -> int:
        i = self.index.get(uid)
        if i is None:
            i = self.index[uid] = len(self.index)
        return i


def _good_rows(paths: list[Path], reader, kind: str, report: InitialLoadReport, progress: bool) -> Iterator:
    """Every valid row of every file (bad ones go to the report with file and line), with progress."""
    for path in paths:
        source = ByteCounter(path)
        with progress_bar(total=source.size, unit="B", unit_scale=True, desc=f"{kind} {path.name}",
                          enabled=progress, mininterval=0.5) as bar:
            for row in reader(source):
                report.rows_read += 1
                if isinstance(row, RowError):
                    report.reject(row)
                else:
                    yield row
                if report.rows_read % 50_000 == 0:
                    bar.update(source.bytes_read - bar.n)
            bar.update(source.bytes_read - bar.n)


def _read_users(paths: list[Path], ids: _Ids, report: InitialLoadReport, progress: bool) -> dict[int, dict]:
    props: dict[int, dict] = {}
    for row in _good_rows(paths, read_users, "users", report, progress):
        # like `SET u += props`: a later row overrides only the fields it gives
        props.setdefault(ids(row.id), {}).update(row.properties())
    return props


def _read_edges(paths: list[Path], ids: _Ids, report: InitialLoadReport,
                progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical (a <= b by id), deduplicated pairs with the earliest `since` (NaN when none)."""
    parts = [_file_pairs(path, ids, report, progress) for path in paths]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    src, dst, ts = (parts[0][:3] if len(parts) == 1
                    else (np.concatenate(x) for x in zip(*(part[:3] for part in parts), strict=True)))
    if any(part[3] is not None for part in parts):   # a dynamic list's removals, in the files' order
        removed = np.concatenate([np.zeros(p[0].size, bool) if p[3] is None else p[3] for p in parts])
        keep = standing_rows(src, dst, removed)   # what ingesting the rows one by one leaves
        src, dst, ts = src[keep], dst[keep], ts[keep]
    del parts
    key = (src << 32) | dst
    order = np.lexsort((np.where(np.isnan(ts), np.inf, ts), key))  # per pair, earliest since first
    key = key[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    keep = order[first]
    return src[keep], dst[keep], ts[keep]


def _file_pairs(path: Path, ids: _Ids, report: InitialLoadReport, progress: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One edge file's rows as importer ids in canonical order, their times, and which rows remove their tie
    (a KONECT dynamic list; None: no row does). The file is read into codes
    (graph/coded_edges.py, as `pymk eval` and the snapshot of an edge list read it): one importer-id lookup and
    one string comparison per distinct id, not per row."""
    rejected = report.rejected
    edges = read_coded_file(path, report.reject, progress, f"edges {path.name}")
    report.rows_read += len(edges) + report.rejected - rejected
    report.edge_rows += len(edges)
    names = edges.names
    importer = np.fromiter(map(ids, names), np.int64, len(names))
    rank = np.empty(len(names), np.int64)   # each code's place in id order (str comparison, as MERGE's a <= b)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    swap = rank[edges.src] > rank[edges.dst]
    return (importer[np.where(swap, edges.dst, edges.src)], importer[np.where(swap, edges.src, edges.dst)],
            edges.ts, edges.removed)


def _write_nodes(path: Path, ids: _Ids, props: dict[int, dict], written_at: float) -> None:
    cols = list(PROFILE_FIELDS)
    header = [":ID", "id"] + [f"{c}:{_TYPES[c]}" if c in _TYPES else c for c in cols] + ["written_at:double"]
    at = repr(written_at)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for uid, i in ids.index.items():
            p = props.get(i, {})
            out.writerow([i, uid, *(_cell(p.get(c)) for c in cols), at])


def _cell(value: object) -> str:
    if value is None:
        return ""  # --ignore-empty-strings: not stored, as MERGE ingestion leaves None out
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _write_friendships(path: Path, src: np.ndarray, dst: np.ndarray, since: np.ndarray, written_at: float) -> None:
    at = repr(written_at)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(":START_ID,:END_ID,since:double,written_at:double\n")
        step = 200_000
        for lo in range(0, len(src), step):
            fh.write("".join(f"{s},{d},{'' if t != t else repr(t)},{at}\n" for s, d, t in
                             zip(src[lo:lo + step].tolist(), dst[lo:lo + step].tolist(),
                                 since[lo:lo + step].tolist(), strict=True)))


def _ensure_schema(cfg: Neo4jSettings) -> None:
    from graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(cfg)
    try:
        store.ensure_schema()
    finally:
        store.close()


def _database_is_empty(cfg: Neo4jSettings) -> bool:
    """True when the database has no users (starting the server briefly if it is not running)."""
    from graph.neo4j_store import Neo4jGraphStore

    if not (cfg.home / "data" / "databases" / cfg.database).exists():
        return True
    was_running = server.status(cfg).running
    server.start(cfg)
    try:
        store = Neo4jGraphStore(cfg)
        try:
            return store.counts().users == 0
        finally:
            store.close()
    finally:
        if not was_running:
            server.stop(cfg)


def _run_importer(cfg: Neo4jSettings, staging: Path, max_memory: str, threads: int, progress: bool) -> None:
    lib = server.build_launcher()
    conf = staging / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "neo4j.conf").write_text("")
    cmd = ["java", *server.JVM_OPENS, "-cp", f"{lib.parent / 'classes'}{os.pathsep}{lib}/*", ADMIN_TOOL,
           "database", "import", "full", f"--nodes=User={staging / 'users.csv'}",
           f"--relationships=FRIENDS_WITH={staging / 'friendships.csv'}", "--id-type=integer",
           "--ignore-empty-strings=true", "--overwrite-destination=true", f"--threads={threads}",
           f"--max-off-heap-memory={max_memory}", f"--report-file={staging / 'import.report'}", cfg.database]
    cfg.home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEO4J_HOME": str(cfg.home), "NEO4J_CONF": str(conf)}
    proc = subprocess.run(cmd, env=env, capture_output=not progress, text=True, check=False)
    if proc.returncode != 0:
        detail = "" if progress else f":\n{(proc.stdout or '')[-3000:]}{(proc.stderr or '')[-3000:]}"
        raise InitialLoadError(f"neo4j-admin import failed with exit code {proc.returncode}{detail}")


def initial_load(cfg: Neo4jSettings, users: list[Path], edges: list[Path], progress: bool = True,
                 max_memory: str = "2G", threads: int | None = None) -> InitialLoadReport:
    """Validate, normalise and import users + friendships into an empty local database, then start it
    (with the schema in place)."""
    if cfg.external:
        raise InitialLoadError(f"initial load writes store files and needs the local server, but NEO4J_URI is "
                               f"set ({cfg.uri!r}); use `pymk ingest` against an external server")
    if not _database_is_empty(cfg):
        raise InitialLoadError(f"database {cfg.database!r} in {cfg.home} already has users; the initial load "
                               f"only fills an empty database (use `pymk ingest` for increments)")
    report = InitialLoadReport()
    start = time.perf_counter()
    ids = _Ids()
    props = _read_users(users, ids, report, progress)
    src, dst, since = _read_edges(edges, ids, report, progress)
    report.users, report.friendships = len(ids.index), len(src)
    staging = cfg.home.parent / f"{cfg.home.name}-import"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written_at = time.time()   # every user and tie enters the store now (`written_at`, as MERGE stamps it)
        _write_nodes(staging / "users.csv", ids, props, written_at)
        _write_friendships(staging / "friendships.csv", src, dst, since, written_at)
        del props, src, dst, since
        server.stop(cfg)
        t = time.perf_counter()
        _run_importer(cfg, staging, max_memory, threads or os.cpu_count() or 2, progress)
        report.import_seconds = time.perf_counter() - t
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    server.start(cfg)
    _ensure_schema(cfg)  # the uniqueness constraint is built over the imported users here
    report.seconds = time.perf_counter() - start
    log.info("%s", report.summary())
    return report
