"""Serving through a Neo4j stall, with the API store's circuit breaker and without it (the baseline).

A throw-away Neo4j holds a small simulated world; `pymk serve` (2 workers x 2 threads, the product's
layout on 2 cores) reaches it through a TCP proxy this script controls. An open-loop generator asks
for suggestions at a fixed rate through three phases: normal, the proxy stalled (connections held
open, nothing passed on: a server frozen by a long pause, a network dropping packets), and resumed.
Both arms run on the same server and data, one after the other: `PYMK_NEO4J_BREAKER_COOLDOWN_S` 5
(the default) and 0 (no breaker). Per phase: how many requests got an answer within 1 s, the 503s and
the unanswered, p50/p99 latency from the scheduled time; and how long after the stall ends requests
are served again. Writes bench/out/stall.json and a plot of every request's latency over time.

    python bench/stall.py [--users 5000] [--rate 20] [--normal 10] [--stall 30] [--after 30]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, fresh_neo4j, open_loop, wait_ready, write_results  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

API_PORT = 8096


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pymk", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _phase(offsets, lat, status, lo: float, hi: float) -> dict:
    sel = (offsets >= lo) & (offsets < hi)
    lat_ms, st = lat[sel] * 1000, status[sel]
    return {"requests": int(sel.sum()), "served_200": int((st == 200).sum()),
            "answered_within_1s": int(((lat_ms <= 1000) & (st != 0)).sum()),
            "status_503": int((st == 503).sum()), "unanswered": int((st == 0).sum()),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 1), "p99_ms": round(float(np.percentile(lat_ms, 99)), 1)}


def _recovered_after(offsets, status, resumed_at: float, bin_s: float = 1.0) -> float | None:
    """Seconds from the end of the stall to the first one-second bin from which every later bin has at
    least 95% of its requests served (None: not within the run)."""
    bins = np.floor((offsets[offsets >= resumed_at] - resumed_at) / bin_s).astype(int)
    ok = (status[offsets >= resumed_at] == 200)
    n = bins.max() + 1 if bins.size else 0
    share = np.array([ok[bins == b].mean() if (bins == b).any() else 1.0 for b in range(n)])
    for b in range(n):
        if (share[b:] >= 0.95).all():
            return b * bin_s
    return None


def _arm(env: dict, proxy: TcpProxy, cooldown: str, users: list[str], rate: float, normal: float, stall: float,
         after: float) -> dict:
    server = subprocess.Popen([sys.executable, "-m", "pymk", "serve", "--port", str(API_PORT), "--workers", "2",
                               "--threads", "2"], cwd=ROOT, env={**env, "PYMK_NEO4J_BREAKER_COOLDOWN_S": cooldown},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(API_PORT)
        rng = np.random.default_rng(0)
        open_loop(API_PORT, [f"/v1/users/{u}/suggestions" for u in rng.choice(users, int(20 * rate))], rate)  # warm
        total = normal + stall + after
        paths = [f"/v1/users/{u}/suggestions?limit=20" for u in rng.choice(users, int(total * rate))]
        t0 = time.perf_counter() + 0.2
        timers = [_at(t0 + normal, proxy.stall), _at(t0 + normal + stall, proxy.resume)]
        offsets, lat, status = open_loop(API_PORT, paths, rate, threads=64, timeout_s=60.0)
        for t in timers:
            t.join()
    finally:
        proxy.resume()
        server.terminate()
        server.wait(timeout=60)
    return {"breaker_cooldown_s": float(cooldown),
            "normal": _phase(offsets, lat, status, 0, normal),
            "stall": _phase(offsets, lat, status, normal, normal + stall),
            "after": _phase(offsets, lat, status, normal + stall, total),
            "served_again_after_s": _recovered_after(offsets, status, normal + stall),
            "trace": {"offset_s": offsets.round(3).tolist(), "latency_ms": (lat * 1000).round(1).tolist(),
                      "status": status.tolist()}}


def _at(when: float, action):
    import threading

    def run() -> None:
        time.sleep(max(0.0, when - time.perf_counter()))
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _plot(arms: list[dict], normal: float, stall: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(arms), figsize=(6 * len(arms), 4), sharey=True)
    for ax, arm in zip(np.atleast_1d(axes), arms, strict=True):
        tr = arm["trace"]
        off, lat, st = (np.asarray(tr[k]) for k in ("offset_s", "latency_ms", "status"))
        for code, colour, label in ((200, "tab:green", "200"), (503, "tab:orange", "503"), (0, "tab:red", "no answer")):
            sel = st == code
            ax.scatter(off[sel], np.maximum(lat[sel], 0.5), s=4, c=colour, label=label)
        ax.axvspan(normal, normal + stall, color="0.9", label="stall", zorder=0)
        ax.set_yscale("log")
        ax.set_xlabel("scheduled at (s)")
        ax.set_title(f"breaker cooldown {arm['breaker_cooldown_s']:g} s" if arm["breaker_cooldown_s"] else "no breaker")
    np.atleast_1d(axes)[0].set_ylabel("latency from the scheduled time (ms)")
    np.atleast_1d(axes)[0].legend(loc="upper left", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@click.command()
@click.option("--users", default=5000, show_default=True)
@click.option("--rate", default=20.0, show_default=True, help="Requests a second, through all three phases.")
@click.option("--normal", default=10.0, show_default=True, help="Seconds before the stall.")
@click.option("--stall", default=30.0, show_default=True, help="Seconds the proxy passes nothing on.")
@click.option("--after", default=30.0, show_default=True, help="Seconds after the stall ends.")
@click.option("--port", default=7697, show_default=True, help="The throw-away Neo4j's Bolt port.")
@click.option("--keep-alive", default=None, type=float, help="The server's PYMK_NEO4J_KEEP_ALIVE_S (else its default).")
@click.option("--cooldowns", default="5,0", show_default=True, help="The arms' breaker cooldowns (0: no breaker).")
def main(users: int, rate: float, normal: float, stall: float, after: float, port: int, keep_alive: float | None,
         cooldowns: str) -> None:
    extra = {} if keep_alive is None else {"PYMK_NEO4J_KEEP_ALIVE_S": f"{keep_alive:g}"}
    with fresh_neo4j("bench-stall", port, env=extra) as settings:
        env = {**os.environ, "PYMK_DATA_DIR": str(settings.data_dir), "PYMK_NEO4J_PORT": str(port),
               "PYMK_API_RATE_LIMIT": "0", "PYMK_SERVED_LOG": "off"}
        sample = OUT / f"stall-sample-{users}"
        if not (sample / "manifest.json").exists():
            _cli(env, "sim", "generate", "--users", str(users), "--days", "1", "--seed", "3", "--out", str(sample))
        for kind, name in (("users", "users.csv"), ("edges", "edges.txt"), ("events", "events.jsonl")):
            _cli(env, "ingest", kind, str(sample / name), "--no-progress")
        _cli(env, "snapshot", "export")
        from pymk.artifacts import ArtifactStore

        ids = np.load(ArtifactStore(settings.snapshot_dir).current() / "ids.npy").astype(str).tolist()
        target = urlparse(settings.neo4j.bolt_uri)
        proxy = TcpProxy(target.hostname, target.port)
        try:
            served = {**env, "NEO4J_URI": f"bolt://127.0.0.1:{proxy.port}"}
            arms = [_arm(served, proxy, cooldown, ids, rate, normal, stall, after) for cooldown in cooldowns.split(",")]
        finally:
            proxy.down()
    r = {"users": users, "rate_rps": rate, "phases_s": [normal, stall, after], "workers": 2, "threads": 2,
         "silence_limit_s": 2 * settings.neo4j.keep_alive_s, "connect_timeout_s": settings.neo4j.connect_timeout_s,
         "arms": arms}
    _plot(arms, normal, stall, OUT / "stall.png")
    for arm in arms:
        print({k: v for k, v in arm.items() if k != "trace"}, flush=True)
    write_results("stall", {**r, "arms": [{k: v for k, v in a.items() if k != "trace"} for a in arms]})
    (OUT / "stall_trace.json").write_text(json.dumps([a["trace"] for a in arms]))


if __name__ == "__main__":
    main()
