"""A snapshot as Parquet, the input of the Spark batch jobs: one row per directed tie, one per user."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from graph.snapshot.format import Snapshot

log = logging.getLogger(__name__)
ROW_GROUP = 1 << 20


def export_parquet(snap: Snapshot, directory: Path) -> Path:
    """Write edges.parquet (src, dst, since: every CSR entry, so both directions of a tie) and
    users.parquet (user index, external id, degree, opted_out, profile columns) under `directory`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".staging-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    edges = pa.table({"src": snap.entry_rows(), "dst": snap.indices.astype(np.int64), "since": snap.since})
    pq.write_table(edges, staging / "edges.parquet", row_group_size=ROW_GROUP)
    users = {"user": np.arange(snap.num_users, dtype=np.int64), "id": snap.id_strings,
             "degree": snap.degree.astype(np.int64), "opted_out": snap.opted_out.astype(bool)}
    users.update({f"num_{k}": v for k, v in snap.numeric.items()})
    users.update({f"cat_{k}": v for k, v in snap.categorical.items()})
    pq.write_table(pa.table(users), staging / "users.parquet", row_group_size=ROW_GROUP)
    # users.parquet last: its presence says the export is complete
    for name in ("edges.parquet", "users.parquet"):
        os.replace(staging / name, directory / name)
    staging.rmdir()
    log.info("exported %d users and %d directed ties to %s", snap.num_users, snap.indices.size, directory)
    return directory
