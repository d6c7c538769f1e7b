"""pymk: a graph-based "people you may know" engine (shared plumbing: settings, artifacts, CLI)."""

__version__ = "0.1.0"
