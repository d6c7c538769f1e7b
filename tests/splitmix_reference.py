"""splitmix64's finalizer in Python integers: an independent reference for graph.snapshot.csr.scrambled,
the tie order of several sources (tests compute expected orders with it, not with the code under test)."""

from __future__ import annotations


def splitmix(x: int) -> int:
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)
