"""Small helpers shared by the benchmark scripts: timing, memory, a throw-away Neo4j, results."""

from __future__ import annotations

import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from pymk.settings import REPO_ROOT, Settings

OUT = REPO_ROOT / "bench" / "out"
T = TypeVar("T")


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(results: dict, key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results[key] = round(time.perf_counter() - start, 3)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p99_ms": round(float(np.percentile(arr, 99)), 3),
            "mean_ms": round(float(arr.mean()), 3)}


def alternating(items: list, arms: dict[str, Callable[[object], T]]
                ) -> tuple[dict[str, list[float]], dict[str, list[T]]]:
    """Each item run under every arm in turn (which arm goes first alternates from item to item, so neither
    gains from what the other warmed); each call's seconds and result, by arm."""
    names = list(arms)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, list[T]] = {n: [] for n in names}
    for i, item in enumerate(items):
        for name in names[::1 if i % 2 else -1]:
            start = time.perf_counter()
            results[name].append(arms[name](item))
            seconds[name].append(time.perf_counter() - start)
    return seconds, results


def against_baseline(seconds: dict[str, list[float]], arm: str, baseline: str = "baseline_without") -> dict:
    """`arm`'s and `baseline`'s latency percentiles (ms) and their p50 and p99 ratios."""
    a, b = percentiles(seconds[arm]), percentiles(seconds[baseline])
    return {f"{arm}_ms": a, f"{baseline}_ms": b, "p50_ratio": round(a["p50_ms"] / b["p50_ms"], 3),
            "p99_ratio": round(a["p99_ms"] / b["p99_ms"], 3)}


def compare_lists(pipeline, kinds: dict[str, list[str]], arms: dict[str, Callable[[], None]], limit: int,
                  source: str, stage: str) -> dict:
    """Each kind's viewers' lists (`pipeline.recommend`) timed under each arm (a setter making the pipeline
    that arm's; the last is the baseline), alternating which goes first, after 30 warm-up lists: latency
    percentiles and ratios, how many lists the arm's `source` reached, and the `stage`'s own time."""
    first, baseline = next(iter(arms)), list(arms)[-1]

    def ranked(name: str, viewer: str):
        arms[name]()
        return pipeline.recommend(viewer, limit)

    arms[first]()
    for v in next(iter(kinds.values()))[-30:]:   # warm the query plans, the pool, the kernels
        pipeline.recommend(v, limit)
    out: dict = {}
    for kind, viewers in kinds.items():
        timed, recs = alternating(viewers, {name: (lambda v, n=name: ranked(n, v)) for name in arms})
        out[kind] = {"viewers": len(viewers),
                     f"lists_with_{source}": sum(any(source in c.sources for c in r.candidates) for r in recs[first]),
                     **against_baseline(timed, first, baseline),
                     f"{stage}_stage_ms": percentiles([r.timings_ms.get(stage, 0.0) / 1000 for r in recs[first]])}
    return out


def wait_ready(port: int, tries: int = 240) -> None:
    """Until the API on 127.0.0.1:`port` answers /readyz with 200 (RuntimeError after `tries` half-seconds)."""
    import http.client

    for _ in range(tries):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the API on port {port} never became ready")


def open_loop(port: int, paths: list[str], rate: float, threads: int = 16, timeout_s: float = 10.0,
              start_in_s: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GET each of `paths` from 127.0.0.1:`port`, the i-th at i / `rate` s after the start (open loop:
    latency counts from the scheduled time, so a slow server cannot hide its queueing behind the
    generator). Returns (scheduled offsets s, latencies s, HTTP statuses; 0: no answer within `timeout_s`)."""
    import http.client
    import threading

    total = len(paths)
    offsets = np.arange(total) / rate
    lat, status = np.zeros(total), np.zeros(total, dtype=np.int64)
    start = time.perf_counter() + start_in_s

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        for i in range(k, total, threads):
            delay = start + offsets[i] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("GET", paths[i])
                resp = conn.getresponse()
                resp.read()
                status[i] = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            lat[i] = time.perf_counter() - (start + offsets[i])

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return offsets, lat, status


@contextmanager
def fresh_neo4j(name: str, port: int, start: bool = True, keep: bool = False,
                env: dict[str, str] | None = None) -> Iterator[Settings]:
    """A throw-away local Neo4j under bench/out/NAME (wiped first unless `keep`), stopped afterwards.
    With start=False the server is left for the caller to start (e.g. after an offline import); `env`:
    more settings (e.g. PYMK_NEO4J_KEEP_ALIVE_S)."""
    from graph import server

    data = OUT / name
    settings = Settings.from_env({"PYMK_DATA_DIR": str(data), "PYMK_NEO4J_PORT": str(port),
                                  "PYMK_NEO4J_HEAP_MB": "2048", "PYMK_NEO4J_PAGECACHE_MB": "1024", **(env or {})})
    server.stop(settings.neo4j)  # one left over by an interrupted run
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
    if start:
        server.start(settings.neo4j)
    try:
        yield settings
    finally:
        server.stop(settings.neo4j)


def write_results(name: str, results: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), **results}
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return path


def commit_of(tree: Path) -> str:
    """The short commit a checkout is at (a comparison's results name both trees by it)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    return out.stdout.strip() or "unknown commit"


def sim_world(name: str, users: int, days: int, seed: int = 1) -> Path:
    """A simulated world (`pymk sim generate`: users.csv, edges.txt, events.jsonl) under bench/out/NAME,
    generated once and reused by later runs."""
    world = OUT / name
    if not (world / "events.jsonl").exists():
        subprocess.run([sys.executable, "-m", "pymk", "sim", "generate", "--users", str(users), "--days", str(days),
                        "--seed", str(seed), "--out", str(world)], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return world


@contextmanager
def world_in_neo4j(name: str, users: int, port: int, for_requests: bool = False) -> Iterator[tuple]:
    """A one-day simulated world of `users` users (`sim_world`) loaded into a throw-away Neo4j (`fresh_neo4j`
    under bench/out/NAME): yields the open store, the users' profiles and a snapshot exported from it; the
    store is closed and the server stopped afterwards."""
    from graph.connect import open_store
    from graph.snapshot.export import from_store

    world = sim_world(f"fresh-path-world-{users}", users, days=1)
    with fresh_neo4j(name, port) as settings:
        store = open_store(settings, for_requests=for_requests)
        try:
            profiles = load_world(store, world)
            yield store, profiles, from_store(store)
        finally:
            store.close()


def load_world(store, world: Path) -> list:
    """A simulated world's users and ties (`sim_world`) into `store`; returns the users' profiles."""
    import csv

    from graph.readers import read_users
    from graph.records import Friendship, UserRecord
    from graph.textfile import ByteCounter

    profiles = [u for u in read_users(ByteCounter(world / "users.csv")) if isinstance(u, UserRecord)]
    with open(world / "edges.txt") as f:
        ties = [Friendship(a, b, float(ts)) for a, b, ts in csv.reader(f, delimiter=" ") if a != "src"]
    store.ensure_schema()
    store.upsert_users(profiles)
    for i in range(0, len(ties), 20_000):
        store.add_friendships(ties[i:i + 20_000])
    return profiles
