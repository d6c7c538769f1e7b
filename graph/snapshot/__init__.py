"""Snapshots: the graph as arrays (CSR adjacency, id map, features, event tables), versioned on disk."""

from graph.snapshot.build import (
    as_of,
    build_csr,
    data_time,
    from_codes,
    from_edge_list,
    from_pairs,
    interaction_events,
    interaction_table,
    recent_window_start,
    restrict_ties,
    tie_times,
    unknown_times,
)
from graph.snapshot.export import from_store
from graph.snapshot.format import Snapshot, load_snapshot, save_snapshot

__all__ = ["Snapshot", "as_of", "build_csr", "data_time", "from_codes", "from_edge_list", "from_pairs", "from_store",
           "interaction_events", "interaction_table", "load_snapshot", "recent_window_start", "restrict_ties",
           "save_snapshot", "tie_times", "unknown_times"]
