"""The rows and errors the edge-list reader gives for a file's text (tests of edge-list layouts)."""

from __future__ import annotations

from graph.edge_reader import EdgeRow, read_edges
from graph.readers import ByteCounter, RowError


def edges_of(tmp_path, text: str | bytes, chunk: int | None = None) -> list[EdgeRow | RowError]:
    """`text` written to tmp_path/edges.txt and read back; `chunk`: bytes a block (None: the default)."""
    p = tmp_path / "edges.txt"
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return list(read_edges(ByteCounter(p), chunk)) if chunk else list(read_edges(ByteCounter(p)))
