"""Snapshots: the graph as arrays (CSR adjacency, id map, features, event tables), versioned on disk."""

from graph.snapshot.build import build_csr, from_edge_list, from_pairs, from_store
from graph.snapshot.format import Snapshot, load_snapshot, save_snapshot

__all__ = ["Snapshot", "build_csr", "from_edge_list", "from_pairs", "from_store", "load_snapshot", "save_snapshot"]
