"""Parts the pipeline tests assemble: the two-cliques graph and sources that lie, fail, stall or sleep."""

from __future__ import annotations

import threading
import time

from candidates.types import Candidate
from graph.snapshot import from_pairs


def two_cliques():
    """Cliques a0..a3 and b0..b3 joined by the bridge a0-b0."""
    pairs = [(f"{s}{i}", f"{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)] + [("a0", "b0")]
    return from_pairs([a for a, _ in pairs], [b for _, b in pairs])


class EvilSource:
    """A source that insists on suggesting blocked and opted-out users with huge scores."""

    name = "evil"
    description = "test"

    def __init__(self, snap, targets):
        self.snap, self.targets = snap, targets

    def generate(self, user, k):
        return [Candidate.of(t, self.snap.index_of(t), self.name, 1e9) for t in self.targets]


class SlowSource:
    """Cannot answer before the test lets it (after the request returned): over budget, deterministically."""

    name = "slow"
    description = "test"

    def __init__(self):
        self.release = threading.Event()

    def generate(self, user, k):
        self.release.wait(timeout=30)
        return []


class BrokenSource:
    name = "broken"
    description = "test"

    def generate(self, user, k):
        raise RuntimeError("boom")


class FixedState:
    def __init__(self, state, opted):
        self.state, self.opted = state, opted

    def viewer_state(self, user_id):
        return self.state

    def opted_out(self, ids):
        return set(ids) & self.opted

    def rules(self, user_id, ids, accounts_since=None):
        return self.viewer_state(user_id), self.opted_out(ids)


class SleepySource:
    def __init__(self, name: str) -> None:
        self.name, self.description = name, "test"

    def generate(self, user, k):
        time.sleep(0.1)
        return []
