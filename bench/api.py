"""API load benchmark on loopback: p50/p99 latency at increasing request rates until saturation.

Sets up a throw-away Neo4j with a 100k-user simulated world (ingested through the normal CLI),
exports a snapshot, trains the ranker, precomputes ranked lists for the users active in the
logged period (`pymk candidates precompute`), starts `pymk serve` and drives it with an open-loop
generator: requests are scheduled at a fixed rate and latency is measured from the scheduled time,
so a slow server cannot hide its queueing (no coordinated omission). The generator runs on the same
2 cores as the server and Neo4j, which the figures include.

Three traffic mixes: `active` draws viewers from the users with a precomputed list (every request
still reads fresh hard-rule state from Neo4j, re-ranks and explains), `inactive` from users without
a list (all stages run on request), as when a dormant user comes back, and `all` from every user
(the mixed traffic of a real day). `--precompute all` (default) ranks every user with a friend ahead
of time, as the nightly batch job does; `--precompute active` only those active in the logged day.

    python bench/api.py [--users 100000] [--rates 50,100,200,300] [--inactive-rates 50,100,150,200] [--reuse]
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, commit_of, fresh_neo4j, open_loop, percentiles, wait_ready, write_results  # noqa: E402
from graph.server import status as neo4j_status  # noqa: E402
from pymk.settings import DEFAULT_THREADS, default_workers  # noqa: E402


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pymk", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


MIX_WARMUP = (100, 20)   # req/s, seconds of a mix's own traffic before its measured runs


def _load(port: int, users: list[str], rate: float, seconds: float, threads: int = 16) -> dict:
    total = int(rate * seconds)
    who = np.random.default_rng(int(rate)).choice(users, total)
    start = time.perf_counter() + 0.2   # open_loop's first request is scheduled 0.2 s from now
    _, lat, status = open_loop(port, [f"/v1/users/{u}/suggestions?limit=20&explain=true" for u in who], rate,
                               threads)
    elapsed = time.perf_counter() - start
    return {"target_rps": rate, "achieved_rps": round(total / elapsed, 1), "requests": total,
            "errors": int((status != 200).sum()), **percentiles(lat.tolist())}


def _histograms(port: int) -> dict[tuple[str, str], dict[float, float]]:
    """The server's latency histograms (all workers): (metric, stage or endpoint) -> {bucket bound s: count}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    out: dict[tuple[str, str], dict[float, float]] = {}
    for line in conn.getresponse().read().decode().splitlines():
        m = re.match(r'(pymk_stage_seconds|pymk_http_request_seconds)_bucket\{(.*)\} (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            name = labels.get("stage") or labels.get("endpoint", "")
            out.setdefault((m.group(1), name), {})[float(labels["le"])] = float(m.group(3))
    return out


def _server_quantiles(before: dict, after: dict, qs: tuple[float, ...] = (0.5, 0.99)) -> dict[str, dict]:
    """Per stage (and the whole suggestions handler, `http`), the histogram bucket that holds each
    quantile of the requests between two scrapes, as its upper bound in ms: where slow requests spent
    their time, and whether the handler's time explains what the client saw (else: queueing before it)."""
    out = {}
    for (metric, name), counts in after.items():
        if metric == "pymk_http_request_seconds" and "suggestions" not in name:
            continue
        bounds = sorted(counts)
        cum = np.array([counts[b] - before.get((metric, name), {}).get(b, 0.0) for b in bounds])
        if not cum.size or cum[-1] <= 0:
            continue
        label = "http" if metric == "pymk_http_request_seconds" else name
        upper = [bounds[int(np.searchsorted(cum, q * cum[-1]))] for q in qs]
        out[label] = {f"p{round(q * 100)}_le_ms": round(u * 1000, 1) if np.isfinite(u) else None
                      for q, u in zip(qs, upper, strict=True)}
    return out


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes and all their descendants have used so far."""
    total, todo, seen = 0.0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:   # exited meanwhile, or no /proc (not Linux): counted as nothing
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _trials(servers: dict[str, tuple[int, dict[str, int]]], users: list[str], rate: float, seconds: float,
            trials: int) -> dict[str, dict]:
    """Several runs at one rate (this shared 2-core machine is noisy): medians, plus every trial, and
    from the server's own histograms the bucket each stage's p50 and p99 fell in over all trials.
    CPU per request over all trials: the server's processes, Neo4j's and this load generator's
    (`servers`: name -> (port, {name: pid})), what sizes a deployment. With several servers (the code
    and a baseline), their trials alternate, each trial's order the reverse of the one before, so both
    meet the same machine: what one run of each, minutes apart, could not give (RESULTS, the worker
    thread's cost)."""
    before = {name: _histograms(port) for name, (port, _) in servers.items()}
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    cpu_s: dict[str, dict[str, float]] = {name: {k: 0.0 for k in [*pids, "generator"]}
                                          for name, (_, pids) in servers.items()}
    names = list(servers)
    for trial in range(trials):
        for name in (names if trial % 2 == 0 else names[::-1]):
            port, pids = servers[name]
            used, mine = {k: _cpu_s([pid]) for k, pid in pids.items()}, time.process_time()
            runs[name].append(_load(port, users, rate, seconds))
            for k, pid in pids.items():
                cpu_s[name][k] += _cpu_s([pid]) - used[k]
            cpu_s[name]["generator"] += time.process_time() - mine
    out = {}
    for name, (port, _) in servers.items():
        got = runs[name]
        n = sum(x["requests"] for x in got)

        def med(key: str, got=got) -> float:
            return round(float(np.median([x[key] for x in got])), 3)

        out[name] = {"target_rps": rate, "achieved_rps": med("achieved_rps"), "requests": n,
                     "errors": sum(x["errors"] for x in got), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
                     "mean_ms": med("mean_ms"), "trials_p99_ms": [x["p99_ms"] for x in got],
                     "server_stages": _server_quantiles(before[name], _histograms(port)),
                     "cpu_ms_per_request": {k: round(1000 * v / n, 2) for k, v in cpu_s[name].items()}}
    return out


def _viewers(settings) -> tuple[list[str], list[str]]:
    """External ids of the users with a precomputed list and of all the others (friendless ones too)."""
    from pymk.artifacts import ArtifactStore

    ids = np.load(ArtifactStore(settings.snapshot_dir).current() / "ids.npy").astype(str)
    offsets = np.load(ArtifactStore(settings.candidates_dir).current() / "offsets.npy")
    has_list = np.diff(offsets) > 0
    return ids[has_list].tolist(), ids[~has_list].tolist()


@click.command()
@click.option("--users", default=100_000, show_default=True)
@click.option("--rates", default="50,100,200,300", show_default=True)
@click.option("--seconds", default=15.0, show_default=True)
@click.option("--trials", default=3, show_default=True, help="Runs per rate; medians are reported.")
@click.option("--inactive-rates", default="50,100,150,200", show_default=True)
@click.option("--all-rates", default="100,150,200", show_default=True,
              help="Rates of the mixed traffic: viewers drawn from ALL users with a friend.")
@click.option("--workers", type=int, default=None, help="Server worker processes (default: the product's).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default: the product's, 2).")
@click.option("--port", default=7698, show_default=True)
@click.option("--reuse", is_flag=True, help="Serve the data a previous run left in bench/out/bench-api.")
@click.option("--precompute", "precompute_for", type=click.Choice(["all", "active"]), default="all",
              show_default=True, help="Precompute lists for every user with a friend (the nightly batch job), "
                                      "or for the users active in the logged period only.")
@click.option("--baseline-src", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="A checkout of other code (a git worktree) to serve the same data beside this code, trials "
                   "alternating between the two; results in bench/out/api_compare.json.")
def main(users: int, rates: str, inactive_rates: str, all_rates: str, seconds: float, trials: int,
         workers: int | None, threads: int | None, port: int, reuse: bool, precompute_for: str,
         baseline_src: Path | None) -> None:
    workers, threads = workers or default_workers(), threads or DEFAULT_THREADS
    r: dict = {"users": users, "precomputed_for": precompute_for}
    reuse = reuse and (OUT / "bench-api" / "candidates" / "CURRENT").exists()
    with fresh_neo4j("bench-api", port, keep=reuse) as settings:
        env = {**os.environ, "PYMK_DATA_DIR": str(settings.data_dir), "PYMK_NEO4J_PORT": str(port),
               "PYMK_API_RATE_LIMIT": "0", "PYMK_API_KEYS": "bench"}
        sample = OUT / f"api-sample-{users}"
        if not reuse:
            t = time.perf_counter()
            if not (sample / "manifest.json").exists():
                _cli(env, "sim", "generate", "--users", str(users), "--days", "1", "--seed", "3", "--out",
                     str(sample))
            for kind, name in (("users", "users.csv"), ("edges", "edges.txt"), ("events", "events.jsonl")):
                _cli(env, "ingest", kind, str(sample / name), "--no-progress")
            _cli(env, "snapshot", "export")
            _cli(env, "ranker", "train", "--epochs", "3")
            r["setup_s"] = round(time.perf_counter() - t, 1)
        else:   # the setup's time as the run that made the data recorded it, if its results are still there
            for earlier in (OUT / "api.json", OUT / "api_active.json"):
                if earlier.exists() and "setup_s" in (was := json.loads(earlier.read_text())):
                    r["setup_s"] = was["setup_s"]
                    break
        t = time.perf_counter()
        _cli(env, "candidates", "precompute", *(["--all-users"] if precompute_for == "all" else ["--active-days", "7"]))
        r["precompute_s"] = round(time.perf_counter() - t, 1)
        r["friendships"] = json.loads((sample / "manifest.json").read_text())["friendships"]
        active, inactive = _viewers(settings)
        r.update(active_users=len(active), users_without_list=len(inactive), workers=workers, threads=threads)
        sources = {"server": ROOT, **({"baseline": baseline_src.resolve()} if baseline_src else {})}
        if baseline_src:
            r["baseline_src"] = f"{baseline_src.resolve()} ({commit_of(baseline_src)}), against {commit_of(ROOT)}"
        procs = {name: subprocess.Popen([sys.executable, "-m", "pymk", "serve", "--port", str(8097 + k),
                                         "--workers", str(workers), "--threads", str(threads)],
                                        cwd=src, env={**env, "PYTHONPATH": str(src)}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                 for k, (name, src) in enumerate(sources.items())}
        ports = {name: 8097 + k for k, name in enumerate(procs)}
        try:
            neo4j_pid = neo4j_status(settings.neo4j).pid
            servers = {name: (ports[name], {"server": proc.pid, **({"neo4j": neo4j_pid} if neo4j_pid else {})})
                       for name, proc in procs.items()}
            for name in procs:
                wait_ready(ports[name])
                # Warm-up (figures are for a server in steady state): Neo4j's JIT compiles its Bolt, Cypher
                # and procedure paths over the first ~10k queries, competing for the same 2 cores until it has.
                warmup = ((50, 20), (100, 40), (150, 30), (200, 30))
                for rate, secs in warmup:
                    _load(ports[name], active, rate, secs)
            r["warmup_requests"] = sum(rate * secs for rate, secs in warmup)
            mixes = (("runs", active, rates), ("runs_inactive", inactive, inactive_rates),
                     ("runs_all", active + inactive, all_rates))
            for mix, ids, series in mixes:
                if not ids or not series:
                    continue  # every user with a friend has a list (no "without a list" mix), or skipped
                if mix != "runs":
                    # the mix's own code paths warmed too (the first on-request rankings touch arrays and
                    # store pages no listed request reads: the first trial was the worst in every run)
                    for port_ in ports.values():
                        _load(port_, ids, MIX_WARMUP[0], MIX_WARMUP[1])
                    r["warmup_requests"] += MIX_WARMUP[0] * MIX_WARMUP[1]
                r[mix] = []
                for rate in map(float, series.split(",")):
                    got = _trials(servers, ids, rate, seconds, trials)
                    run = got["server"] if len(got) == 1 else got
                    print(mix, run, flush=True)
                    r[mix].append(run)
                    if any(x["achieved_rps"] < 0.9 * rate or x["p99_ms"] > 2000 for x in got.values()):
                        break  # saturated
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(timeout=30)
    if baseline_src:   # a comparison, not this code's figures: its own file
        write_results("api_compare", r)
        return
    write_results("api" if precompute_for == "all" else "api_active", r)


if __name__ == "__main__":
    main()
