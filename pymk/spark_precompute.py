"""The batch precompute on Apache Spark (`pymk candidates precompute --engine spark`), for graphs and
user counts beyond one machine.

Input is the snapshot exported as Parquet (graph/snapshot/parquet.py). Two Spark stages:

1. Two-hop candidates as DataFrame joins, with the skew handled as the in-process source handles
   it: friends with more than `max_friend_degree` friends are not intermediaries (hub cap), and
   each viewer's wedges are capped at `max_two_hop`, its lowest-degree friends first (a window
   over the viewer's friends ordered by degree), so no viewer's group and no hub's fan-out can
   explode. Mutual counts, Adamic-Adar and resource allocation are summed per viewer in a grouped
   pandas UDF, in the same order as `candidates.fof.fof_block` (so the same bits).
2. Ranking, per block of viewers (a grouped pandas UDF): each Python worker loads the served
   snapshot, embeddings and ranker once (artifacts pinned to the driver's versions) and runs the
   block engine (`ranker.batch.BlockRanker`) with the Spark two-hop candidates in place of the
   friends-of-friends source: the other sources, the features (ranker/features.py) and the
   scorer are the very code the API runs.

The driver streams the ranked lists back in user order and publishes the same artifact the
in-process engines write (tested identical, byte for byte). Executors need the code, the
requirements and read access to `PYMK_DATA_DIR` (a shared filesystem); see docs/refresh.md.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from candidates.base import Proposals
from candidates.fof import fof_proofs, score_paths
from candidates.precompute import publish_lists
from graph.snapshot.parquet import export_parquet
from graph.tiebreak import id_hashes
from pymk.artifacts import ArtifactStore
from pymk.errors import SparkUnavailableError
from pymk.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
FOF_SCHEMA = "v long, cand long, mutual long, aa double, ra double, mutual_ids array<long>, rank int"
RANKED_SCHEMA = "user long, blob binary, features binary, rows int, task_ms double"
CONNECT_DEFAULT_PORT = 15002
_EXECUTOR: dict = {}   # per Python worker: what it has loaded (reused across tasks)


def _check_reachable(remote: str) -> None:
    """SparkUnavailableError at once when nothing answers at a Spark Connect URL (sc://host[:port]/...):
    the client would retry with growing waits for minutes before it says so."""
    url = urlparse(remote)
    host, port = url.hostname or "localhost", url.port or CONNECT_DEFAULT_PORT
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise SparkUnavailableError(f"SPARK_REMOTE={remote}", exc) from None


_CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"   # set by pyspark for a Spark Connect session, and not unset after it


def spark_session(master: str | None = "local[*]", app: str = "pymk-precompute"):
    """A SparkSession: Spark Connect when SPARK_REMOTE is set, else `master` (None: as spark-submit set it)."""
    from pyspark.sql import SparkSession

    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        _check_reachable(remote)
        builder, where = SparkSession.builder.appName(app).remote(remote), f"SPARK_REMOTE={remote}"
    else:
        builder = SparkSession.builder.appName(app).config("spark.sql.adaptive.enabled", "true") \
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        where = f"master {master or '(as spark-submit set it)'}"
        if master:
            builder = builder.master(master)
        if master and master.startswith("local"):
            # local workers run this interpreter and import this checkout (a cluster gets both from
            # spark-submit's --archives and --py-files, docs/refresh.md)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            os.environ["PYTHONPATH"] = path
            builder = builder.config("spark.ui.enabled", "false").config("spark.executorEnv.PYTHONPATH", path)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # pyspark's, py4j's and Java's errors: a missing client library, a master that
        # cannot be reached after Spark's own retries
        raise SparkUnavailableError(where, exc) from exc


def _id_hash(parquet_dir: str) -> np.ndarray:
    """The users' id hashes (Snapshot.id_hash: the order of equal scores), read once per executor."""
    if ("id_hash", parquet_dir) not in _EXECUTOR:
        import pyarrow.parquet as pq

        ids = np.asarray(pq.read_table(f"{parquet_dir}/users.parquet", columns=["id"])["id"].to_numpy(), dtype=str)
        _EXECUTOR[("id_hash", parquet_dir)] = id_hashes(ids)
    return _EXECUTOR[("id_hash", parquet_dir)]


def _score_two_hop(pdf, parquet_dir: str, k: int, max_proof: int):
    """One viewer's wedges (v, m, x, dm) -> its top k two-hop candidates, scored as fof_block scores them."""
    import pandas as pd

    x, m, dm = (pdf[c].to_numpy(np.int64) for c in ("x", "m", "dm"))
    order = np.lexsort((m, x))   # per candidate, its mutual friends in increasing order, as fof_block has them
    id_hash = _id_hash(parquet_dir)
    viewer = int(pdf["v"].iloc[0])
    s = score_paths(np.zeros(x.size, dtype=np.int64), x[order], m[order], dm[order], id_hash, id_hash[[viewer]],
                    id_hash.size, k)
    top = slice(0, k)
    return pd.DataFrame({"v": np.full(s.candidates[top].size, viewer, dtype=np.int64),
                         "cand": s.candidates[top], "mutual": s.mutual[top], "aa": s.adamic_adar[top],
                         "ra": s.resource_allocation[top],
                         "mutual_ids": s.mutual_ids_of(s.owner[top], s.candidates[top], max_proof),
                         "rank": np.arange(s.candidates[top].size, dtype=np.int32)})


def two_hop(spark, parquet_dir: Path, viewers, max_friend_degree: int, max_two_hop: int, k: int, max_proof: int):
    """Each viewer's top k friends-of-friends (FOF_SCHEMA), from the Parquet edges."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812 - the Spark convention

    edges = spark.read.parquet(str(parquet_dir / "edges.parquet")).select("src", "dst")
    degree = spark.read.parquet(str(parquet_dir / "users.parquet")).select(F.col("user").alias("m"),
                                                                          F.col("degree").alias("dm"))
    friends = viewers.join(edges, viewers.v == edges.src).select("v", F.col("dst").alias("m")).join(degree, "m")
    friends = friends.filter((F.col("dm") >= 2) & (F.col("dm") <= max_friend_degree))   # hub cap
    by_degree = Window.partitionBy("v").orderBy("dm", "m")
    mids = friends.withColumn("cum", F.sum("dm").over(by_degree.rowsBetween(Window.unboundedPreceding,
                                                                            Window.currentRow))) \
        .withColumn("first", F.row_number().over(by_degree) == 1) \
        .filter((F.col("cum") <= max_two_hop) | F.col("first")).select("v", "m", "dm")   # wedge budget
    wedges = mids.join(edges.select(F.col("src").alias("m"), F.col("dst").alias("x")), "m") \
        .filter(F.col("x") != F.col("v")) \
        .join(edges.select(F.col("src").alias("v"), F.col("dst").alias("x")), ["v", "x"], "left_anti")
    where = str(parquet_dir)

    def score(pdf):
        return _score_two_hop(pdf, where, k, max_proof)

    return wedges.groupBy("v").applyInPandas(score, FOF_SCHEMA)


def _block_ranker(data_dir: str, versions: dict, keep: int):
    key = ("ranker", data_dir, tuple(sorted(versions.items())), keep)
    if key not in _EXECUTOR:
        import torch

        from pymk.assemble import assemble_pipeline
        from ranker.batch import BlockRanker

        torch.set_num_threads(1)   # Spark runs one task per core
        settings = Settings.from_env({**os.environ, "PYMK_DATA_DIR": data_dir})
        # the driver's versions, not the CURRENT pointers: a refresh run releases its versions only at its end
        stores = {name: ArtifactStore(settings.artifact_dirs[name]).pinned(versions[f"{name}_version"])
                  for name in ("snapshot", "embeddings", "ranker")}
        built = assemble_pipeline(settings, stores=stores)
        if built.versions != versions:
            raise RuntimeError(f"executor sees artifacts {built.versions}, the driver {versions}")
        built.pipeline.config = replace(built.pipeline.config, source_budget_s=600.0)   # offline: wait
        _EXECUTOR[key] = BlockRanker(built.pipeline, keep)
        # cached for the worker's life: out of the collector's reach, as in the in-process engine
        gc.collect()
        gc.freeze()
    return _EXECUTOR[key]


def _rank_block(pdf, data_dir: str, versions: dict, keep: int):
    """One block of viewers (marker rows have no candidate) and their Spark two-hop rows -> ranked lists."""
    import pandas as pd

    start = time.perf_counter()
    rank = _block_ranker(data_dir, versions, keep)
    ids = rank.pipeline.snap.id_strings
    users = np.unique(pdf["v"].to_numpy(np.int64))
    fof = pdf[pdf["cand"].notna()]
    owner = np.searchsorted(users, fof["v"].to_numpy(np.int64))
    order = np.lexsort((fof["rank"].to_numpy(), owner))
    owner, cand = owner[order], fof["cand"].to_numpy(np.int64)[order]
    mutual, aa = fof["mutual"].to_numpy(np.int64)[order], fof["aa"].to_numpy(np.float64)[order]
    ra, mutual_ids = fof["ra"].to_numpy(np.float64)[order], fof["mutual_ids"].to_numpy()[order]

    def proof(rows: np.ndarray) -> list[dict]:
        return fof_proofs(mutual[rows].tolist(), aa[rows].tolist(), ra[rows].tolist(),
                          [mutual_ids[i] for i in rows.tolist()], ids)

    done = rank(users, {"fof": Proposals(owner, cand, mutual.astype(np.float64), proof)})
    return pd.DataFrame({"user": [u for u, _, _ in done], "blob": [b for _, b, _ in done],
                         "features": [f.astype(np.float32).tobytes() for _, _, f in done],
                         "rows": np.array([f.shape[0] for _, _, f in done], dtype=np.int32),
                         "task_ms": np.full(len(done), 1000 * (time.perf_counter() - start) / max(len(done), 1))})


def _batches(rows, width: int, manifest: dict, size: int = 256):
    """Result rows in batches; adds to `manifest` (written once all arrived) the users ranked per second
    of ranking task time (the per-core throughput of the executors)."""
    batch, task_ms, users = [], 0.0, 0
    for row in rows:
        task_ms += row["task_ms"]
        users += 1
        feats = np.frombuffer(row["features"], dtype=np.float32).reshape(row["rows"], width)
        batch.append((int(row["user"]), bytes(row["blob"]), feats))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
    manifest["ranking_task_users_per_core_s"] = round(users / max(task_ms / 1000, 1e-9), 1)


def _parallelism(spark) -> int | None:
    try:
        return spark.sparkContext.defaultParallelism
    except Exception:  # Spark Connect clients have no SparkContext
        return None


def spark_precompute(settings: Settings, built, users: np.ndarray, keep: int = 60, block: int = 64,
                     master: str | None = "local[*]", progress: bool = False, out: ArtifactStore | None = None
                     ) -> Path:
    """Rank `users` on Spark with the artifacts `built` was assembled from; publish their lists to `out`
    (default: the served candidates store)."""
    started = time.perf_counter()
    from pyspark.sql import SparkSession

    from ranker.batch import BlockRanker

    BlockRanker(built.pipeline, keep)   # fails early, on the driver, for a ranker without a block form
    fof = next((s for s in built.pipeline.sources if s.name == "fof"), None)
    parquet_dir = settings.data_dir / "parquet" / built.snapshot_version
    if not (parquet_dir / "users.parquet").exists():
        export_parquet(built.pipeline.snap, parquet_dir)
    ours = SparkSession.getActiveSession() is None   # a session spark-submit or the caller made is left running
    connect_mode = os.environ.get(_CONNECT_MODE)
    spark = spark_session(master)
    try:
        return _rank_on_spark(spark, settings, built, users, keep, block, fof, parquet_dir, progress, started,
                              out or ArtifactStore(settings.candidates_dir))
    finally:
        if ours:   # so that a later job in this process can have a session of another kind (Connect or not)
            spark.stop()
            if connect_mode is None:   # pyspark leaves it set after a Connect session: a local one would fail
                os.environ.pop(_CONNECT_MODE, None)


def _rank_on_spark(spark, settings: Settings, built, users: np.ndarray, keep: int, block: int, fof,
                   parquet_dir: Path, progress: bool, started: float, out: ArtifactStore) -> Path:
    import pandas as pd
    from pyspark.sql import functions as F  # noqa: N812 - the Spark convention

    from ranker.features import FEATURE_NAMES

    users = np.unique(np.asarray(users, dtype=np.int64))
    viewers = spark.createDataFrame(pd.DataFrame({"v": users, "block": np.arange(users.size) // block}),
                                    "v long, block long")   # typed: no rows to infer it from on a quiet day
    k = built.pipeline.config.per_source_k
    marker = viewers.select("v", "block", *[F.lit(None).cast(t).alias(c) for c, t in (
        ("cand", "long"), ("mutual", "long"), ("aa", "double"), ("ra", "double"), ("mutual_ids", "array<long>"),
        ("rank", "int"))])
    parts = marker
    if fof is not None:
        cands = two_hop(spark, parquet_dir, viewers.select("v"), fof.max_friend_degree, fof.max_two_hop, k,
                        fof.max_proof)
        parts = marker.unionByName(cands.join(viewers, "v"))
    data_dir, versions = str(settings.data_dir), built.versions

    def rank(pdf):
        return _rank_block(pdf, data_dir, versions, keep)

    ranked = parts.groupBy("block").applyInPandas(rank, RANKED_SCHEMA)
    rows = ranked.orderBy("user").toLocalIterator()
    manifest = {"keep": keep, "block": block, "engine": "spark", "spark_master": spark.conf.get("spark.master",
                                                                                               "remote"),
                "parallelism": _parallelism(spark), **built.versions}
    return publish_lists(built.pipeline.snap.num_users, users, _batches(rows, len(FEATURE_NAMES), manifest),
                         out, manifest, progress, started)
