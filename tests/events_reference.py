"""The snapshot export's event table as it was built before the columnar read (graph/eventcols.py): one
Event at a time from `EventLog.read`, a Python set for the repeats. Kept as the oracle the columnar table
must match, and as the baseline of bench/events_export.py."""

from __future__ import annotations

import numpy as np

from graph.snapshot.format import EVENT_CODE


def event_table_reference(ids: np.ndarray, events) -> dict[str, np.ndarray]:
    index = {str(x): i for i, x in enumerate(ids.tolist())}
    seen, rows = set(), []
    for ev in events:
        key = (ev.type, ev.src, ev.dst, ev.ts, ev.position)
        if key in seen or ev.src not in index or ev.dst not in index or ev.type not in EVENT_CODE:
            continue
        seen.add(key)
        position = -1 if ev.position is None else ev.position
        rows.append((EVENT_CODE[ev.type], index[ev.src], index[ev.dst], ev.ts, position))
    rows.sort(key=lambda r: r[3])
    arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return {"type": arr[:, 0].astype(np.int8), "src": arr[:, 1].astype(np.int32), "dst": arr[:, 2].astype(np.int32),
            "ts": arr[:, 3].copy(), "position": arr[:, 4].astype(np.int16)}
