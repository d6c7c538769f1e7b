"""Node input features from the snapshot's profile columns (no graph structure, so inductive).

Categorical attributes are hashed into a fixed number of buckets (a new school needs no new
vocabulary), numerics are normalized, missing values get an indicator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from graph.records import CATEGORICAL_FIELDS
from graph.snapshot import Snapshot


@dataclass
class NodeFeatures:
    categorical: torch.Tensor   # [n, C] bucket index per column (0 = missing)
    numeric: torch.Tensor       # [n, F]
    buckets: int

    @property
    def num_nodes(self) -> int:
        return int(self.numeric.shape[0])

    def to(self, device: torch.device) -> NodeFeatures:
        return NodeFeatures(self.categorical.to(device), self.numeric.to(device), self.buckets)

    def subset(self, nodes: torch.Tensor) -> NodeFeatures:
        return NodeFeatures(self.categorical[nodes], self.numeric[nodes], self.buckets)


def _bucket(value: str, column: str, buckets: int) -> int:
    digest = hashlib.blake2b(f"{column}={value}".encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


def build_features(snap: Snapshot, buckets: int = 4096) -> NodeFeatures:
    n = snap.num_users
    cats = np.zeros((n, len(CATEGORICAL_FIELDS)), dtype=np.int64)
    for j, col in enumerate(CATEGORICAL_FIELDS):
        codes = snap.categorical.get(col)
        vocab = snap.vocab.get(col, [])
        if codes is None or not vocab:
            continue
        table = np.array([0] + [_bucket(v, col, buckets) for v in vocab], dtype=np.int64)
        cats[:, j] = table[codes + 1]
    cols = []
    created = snap.numeric.get("created_at", np.full(n, np.nan))
    ok = ~np.isnan(created)
    z = np.zeros(n)
    if ok.any():
        z[ok] = (created[ok] - created[ok].mean()) / (created[ok].std() + 1e-9)
    cols += [z, (~ok).astype(float)]
    lat = np.radians(snap.numeric.get("lat", np.full(n, np.nan)))
    lon = np.radians(snap.numeric.get("lon", np.full(n, np.nan)))
    has_geo = ~(np.isnan(lat) | np.isnan(lon))
    for arr in (np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)):
        cols.append(np.where(has_geo, arr, 0.0))
    cols.append((~has_geo).astype(float))
    numeric = torch.tensor(np.column_stack(cols), dtype=torch.float32)
    return NodeFeatures(torch.from_numpy(cats), numeric, buckets)
