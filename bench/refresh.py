"""The nightly refresh at scale: each stage's time and peak memory on simulator worlds of growing size.

For each size, a world with the given mean degree is generated (not timed as part of the refresh),
then the refresh's stages run as `pymk refresh` runs them, each in its own process so its peak
memory is its own: snapshot (CSR build + publish from the simulator's tie arrays; the export
from Neo4j is measured by bench/ingest.py), embeddings (GraphSAGE + FAISS, `--epochs`), ranker
(trained from the graph's history), precompute (block engine, one worker process per core).
With `--precompute-sample N` the precompute ranks a random N of the users with a friend and
the full stage time is extrapolated from its users/s (reported as such).

    python bench/refresh.py [--users 100000,300000,1000000] [--mean-degree 50] [--epochs 5]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import OUT, write_results  # noqa: E402


def _in_child(fn: Callable[[], dict]) -> dict:
    """Run fn in a forked process; its result, seconds and peak RSS (MB, its worker processes included)."""
    r, w = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 0
        try:
            payload = json.dumps(fn()).encode()
        except BaseException:  # reported to the parent, which fails loudly
            payload = json.dumps({"error": traceback.format_exc()}).encode()
            code = 1
        with os.fdopen(w, "wb") as fh:
            fh.write(payload)
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    _, status, usage = os.wait4(pid, 0)
    out = json.loads(data or b"{}")
    if status != 0 or "error" in out:
        raise RuntimeError(f"stage failed in its process:\n{out.get('error', status)}")
    return {**out, "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def _settings(data: Path):
    from pymk.settings import Settings

    return Settings.from_env({"PYMK_DATA_DIR": str(data)})


def _snapshot_stage(data: Path, users: int, mean_degree: float, seed: int) -> Callable[[], dict]:
    def run() -> dict:
        from graph.snapshot import save_snapshot
        from pymk.artifacts import ArtifactStore
        from sim.world import WorldConfig, generate_world, world_snapshot

        # the simulator realizes ~0.73x its target degree once duplicate ties merge
        world = generate_world(WorldConfig(num_users=users, avg_degree=mean_degree / 0.73, seed=seed))
        generated = world.stats["generate_s"]
        t = time.perf_counter()
        snap = world_snapshot(world)
        del world
        save_snapshot(snap, ArtifactStore(_settings(data).snapshot_dir), source="simulator")
        return {"generate_world_s": round(generated, 1), "snapshot_s": round(time.perf_counter() - t, 1),
                "users": snap.num_users, "directed_edges": int(snap.indices.size),
                "mean_degree": round(float(snap.indices.size / snap.num_users), 1)}
    return run


def _precompute_stage(data: Path, sample: int | None, workers: int, block: int, seed: int,
                      engine: str = "block") -> Callable[[], dict]:
    def run() -> dict:
        from pymk.artifacts import ArtifactStore
        from pymk.refresh import stage_precompute

        settings = _settings(data)
        start = time.perf_counter()
        stage_precompute(settings, all_users=True, workers=workers, block=block, limit=sample, seed=seed,
                         engine=engine, master=f"local[{workers}]")
        store = ArtifactStore(settings.candidates_dir)
        m = store.manifest(store.current())
        keys = ("users", "users_per_s", "ms_per_user", "block", "workers", "parallelism",
                "ranking_task_users_per_core_s")
        return {"stage_s": round(time.perf_counter() - start, 1), **{k: m[k] for k in keys if k in m}}
    return run


def run_size(users: int, mean_degree: float, epochs: int, sample: int | None, workers: int, block: int,
             seed: int, keep: bool, spark_sample: tuple[int, int] | None = None) -> dict:
    from pymk.refresh import stage_embeddings, stage_ranker

    data = OUT / f"refresh-{users}"
    shutil.rmtree(data, ignore_errors=True)
    r: dict = {"users": users}
    r["snapshot"] = _in_child(_snapshot_stage(data, users, mean_degree, seed))
    print("snapshot", r["snapshot"], flush=True)
    r["embeddings"] = _in_child(lambda: {"version": stage_embeddings(_settings(data), epochs=epochs,
                                                                     max_auc_drop=1.0)})
    r["embeddings"]["epochs"] = epochs
    print("embeddings", r["embeddings"], flush=True)
    r["ranker"] = _in_child(lambda: {"version": stage_ranker(_settings(data))})
    print("ranker", r["ranker"], flush=True)
    r["precompute"] = _in_child(_precompute_stage(data, sample, workers, block, seed))
    print("precompute", r["precompute"], flush=True)
    with_friend = r["snapshot"]["users"]  # every user with a friend is ranked; the sample's rate extrapolates
    rate = r["precompute"]["users_per_s"]
    r["precompute_all_users_s"] = (round(r["precompute"]["seconds"], 1) if not sample
                                   else round(with_friend / rate, 1))
    if spark_sample:  # the same engine on Spark local[workers], beside the in-process run, on two samples
        small, large = spark_sample
        r["spark"] = [_in_child(_precompute_stage(data, n, workers, block, seed, engine="spark"))
                      for n in (small, large)]
        r["spark_inprocess"] = _in_child(_precompute_stage(data, large, workers, block, seed))
        # wall = fixed + users * marginal: the marginal cost is what more executors divide
        marginal = (r["spark"][1]["seconds"] - r["spark"][0]["seconds"]) / (large - small)
        r["spark_fixed_s"] = round(r["spark"][0]["seconds"] - small * marginal, 1)
        r["spark_users_per_core_s"] = round(1.0 / (marginal * workers), 1)
        # executor cores Spark needs to rank all users with a friend sooner than this machine in-process
        total = r["snapshot"]["users"]
        own = total / r["spark_inprocess"]["users_per_s"]
        r["spark_cores_to_overtake_this_machine"] = (
            round(total / (r["spark_users_per_core_s"] * (own - r["spark_fixed_s"])), 1)
            if own > r["spark_fixed_s"] else None)
        print("spark", r["spark"], r["spark_inprocess"], flush=True)
    r["refresh_s"] = round(r["snapshot"]["snapshot_s"] + r["embeddings"]["seconds"] + r["ranker"]["seconds"]
                           + r["precompute_all_users_s"], 1)
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
    return r


@click.command()
@click.option("--users", default="100000,300000,1000000", show_default=True, help="World sizes, comma-separated.")
@click.option("--mean-degree", default=50.0, show_default=True, help="Mean friends per user (1M x 50 = 50M "
              "directed edges).")
@click.option("--epochs", default=5, show_default=True, help="GraphSAGE epochs (the refresh default is 60 with "
              "early stopping; the stage's time grows linearly with them).")
@click.option("--precompute-sample", default="0,0,50000", show_default=True,
              help="Per size: users to precompute (0 = all with a friend); the full time is extrapolated.")
@click.option("--spark-sample", default="1500,6000", show_default=True,
              help="Two user counts ranked on Spark local[workers] at the first size (and the larger in-process, "
                   "to compare); 0 or '' to skip.")
@click.option("--workers", default=os.cpu_count() or 1, show_default=True)
@click.option("--block", default=64, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the data directories under bench/out.")
@click.option("--out", "out_name", default="refresh", show_default=True, help="Results: bench/out/NAME.json.")
def main(users: str, mean_degree: float, epochs: int, precompute_sample: str, spark_sample: str, workers: int,
         block: int, seed: int, keep: bool, out_name: str) -> None:
    sizes = [int(x) for x in users.split(",")]
    samples = [int(x) for x in precompute_sample.split(",")]
    samples += [0] * (len(sizes) - len(samples))
    spark = tuple(int(x) for x in spark_sample.split(",")) if spark_sample.strip() else None
    spark = spark if spark and any(spark) else None   # '0' or '0,0': none
    if spark is not None and len(spark) != 2:
        raise click.BadParameter(f"two sample sizes, small,large, or 0 for none (got {spark_sample!r})",
                                 param_hint="--spark-sample")
    runs = []
    for i, (size, sample) in enumerate(zip(sizes, samples, strict=False)):
        runs.append(run_size(size, mean_degree, epochs, sample or None, workers, block, seed, keep,
                             spark if i == 0 else None))
        own_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        write_results(out_name, {"mean_degree": mean_degree, "runs": runs, "bench_peak_rss_mb": own_mb})
    base = runs[0]
    for run in runs[1:]:
        growth = {s: round(run[s]["seconds"] / max(base[s]["seconds"], 1e-9), 2) for s in ("embeddings", "ranker")}
        growth["precompute"] = round(run["precompute_all_users_s"] / max(base["precompute_all_users_s"], 1e-9), 2)
        print(f"{run['users']} vs {base['users']} users ({run['users'] / base['users']:.0f}x): stage time x{growth}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
