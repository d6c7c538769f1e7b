"""CSR helpers shared by the candidate sources and the ranking features."""

from __future__ import annotations

import numpy as np


def row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR positions of every entry of `rows`, and for each the index (into `rows`) it belongs to."""
    starts, lens = indptr[rows], indptr[rows + 1] - indptr[rows]
    total = int(lens.sum())
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
    return offsets, np.repeat(np.arange(rows.size), lens)


def gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated neighbour lists of `rows`, and for each entry the row it came from."""
    offsets, owner = row_positions(indptr, rows)
    return indices[offsets], rows[owner]
