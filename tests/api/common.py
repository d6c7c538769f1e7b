"""Shared by the API tests: the world they serve, the write key, the ids a response suggests."""

from __future__ import annotations

from graph.records import Friendship, UserRecord

KEY = {"X-API-Key": "k1"}


def cliques_world(store) -> None:
    """Cliques a0..a3 and b0..b3 joined by the bridge a0-b0, plus c0 with a school."""
    pairs = [(f"{s}{i}", f"{s}{j}") for s in "ab" for i in range(4) for j in range(i + 1, 4)] + [("a0", "b0")]
    # an hour apart, the bridge last (one time for every tie would read as no times: graph/snapshot/build.py)
    store.add_friendships([Friendship(a, b, 1.7e9 + 3600.0 * k) for k, (a, b) in enumerate(pairs)])
    store.upsert_users([UserRecord(id="c0", school="mit", city="oslo")])


def suggested(resp) -> list[str]:
    return [s["user_id"] for s in resp.get_json()["suggestions"]]
