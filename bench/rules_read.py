"""The serving path's one rules read against Neo4j, against reading the same state call by call.

Every request reads the viewer's friends, pending requests, blocks, declines, dismissals, its own
deactivated / deleted flags, and which candidates are opted out, deactivated or deleted (tombstones),
in one round trip (`viewer_rules`), through a batch job's store and the API's store (`api_store`:
each query bounded by PYMK_NEO4J_REQUEST_TIMEOUT_S).
`one_round_trip_as_served` passes the snapshot's time (`accounts_since`), as the API does since
2026-12-06: ids deleted after it and created again count as former accounts. Baselines in the same
run: the same state from the store's single-purpose reads (friends, pending,
blocked, opted-out candidates: four round trips), the read as it was before 2026-12-05, and both
again with the relationship index on REQUESTED.status that earlier versions created (with it the old
read seeks every pending request of the database instead of expanding from the viewer).

    PYTHONPATH=. .venv/bin/python bench/rules_read.py --users 20000 --candidates 100 --requests 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import fresh_neo4j, percentiles, write_results
from graph.connect import open_store
from graph.records import Event, Friendship, UserRecord

Q_OLD_STATUS_INDEX = "CREATE INDEX requested_status IF NOT EXISTS FOR ()-[r:REQUESTED]-() ON (r.status)"
# the rules read as it was before 2026-12-05 (status predicates in the patterns; no deletion tombstones)
Q_RULES_BEFORE = """
CALL () {
  UNWIND $ids AS cid MATCH (x:User {id: cid}) WHERE x.opted_out = true OR x.deactivated = true
  RETURN collect(x.id) AS opted
}
OPTIONAL MATCH (u:User {id: $id})
RETURN opted,
       [(u)-[:FRIENDS_WITH]-(f) | f.id] AS friends,
       [(u)-[r:REQUESTED {status: 'pending'}]-(p) | p.id] AS pending,
       [(u)-[:BLOCKED]-(b) | b.id] AS blocked,
       [(u)-[r:REQUESTED {status: 'declined'}]-(d) | [d.id, r.responded_at]] AS declined,
       [(u)-[:DISMISSED]->(x) | x.id] AS dismissed
"""


def _load(store, n: int, degree: int, rng: np.random.Generator) -> list[str]:
    ids = [f"u{i}" for i in range(n)]
    store.upsert_users([UserRecord(id=u, opted_out=bool(i % 50 == 0)) for i, u in enumerate(ids)])
    pairs = rng.integers(0, n, size=(n * degree // 2, 2))
    for start in range(0, len(pairs), 20_000):
        store.add_friendships([Friendship(ids[a], ids[b], 1.6e9) for a, b in pairs[start:start + 20_000] if a != b])
    events = [Event(kind, ids[a], ids[b], 1.6e9 + i) for i, (a, b) in enumerate(rng.integers(0, n, size=(n, 2)))
              if a != b for kind in ("send", "block" if i % 10 == 0 else "dismiss")]
    store.apply_events(events)
    snapshot_at = time.time()
    store.delete_users(ids[1::97])   # tombstones: accounts deleted after the snapshot
    store.upsert_users([UserRecord(id=u) for u in ids[1::194]])   # half of those ids taken again by new accounts
    return ids, snapshot_at


def main(users: int, degree: int, candidates: int, requests: int, port: int) -> None:
    stats: dict[str, dict] = {}
    for status_index in (False, True):   # a database made with the old index from the start, and one without
        rng = np.random.default_rng(0)
        with fresh_neo4j("rules_read", port) as settings:
            store = open_store(settings)
            store.ensure_schema()
            if status_index:
                store._write([(Q_OLD_STATUS_INDEX, {})])
                store._write([("CALL db.awaitIndexes(300)", {})])
            start = time.perf_counter()
            ids, snapshot_at = _load(store, users, degree, rng)
            load_s = time.perf_counter() - start
            draws = [(ids[v], [ids[c] for c in rng.integers(0, users, candidates)])
                     for v in rng.integers(0, users, requests)]
            api_store = open_store(settings, for_requests=True)
            ways = {"one_round_trip": lambda v, cs, s=store: s.viewer_rules(v, cs),
                    # as the API calls it: the served snapshot's time, so ids deleted since and taken again count
                    "one_round_trip_as_served": lambda v, cs, s=store, t=snapshot_at: s.viewer_rules(v, cs, t),
                    "one_round_trip_api_store": lambda v, cs, s=api_store: s.viewer_rules(v, cs),
                    "before_2026_12_05": lambda v, cs, s=store: s._read(Q_RULES_BEFORE, id=v, ids=cs),
                    "four_reads_baseline": lambda v, cs, s=store: (s.friends(v), s.pending_requests(v),
                                                                   s.blocked(v), s.opted_out_among(cs))}
            got = _measure(ways, draws)
            stats.update({f"{k}{'_with_status_index' if status_index else ''}": v for k, v in got.items()})
            store.close()
            api_store.close()
    ours = stats["one_round_trip"]["p50_ms"]
    write_results("rules_read", {
        "users": users, "mean_degree": degree, "candidates_per_request": candidates, "requests": requests,
        "load_s": round(load_s, 1), "latency": stats,
        **{f"{k}_over_ours_p50": round(v["p50_ms"] / ours, 2) for k, v in stats.items() if k != "one_round_trip"}})


def _measure(ways: dict, draws: list) -> dict:
    samples: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(2):   # interleaved passes: the page cache warms all alike; the second pass counts
        for name, way in ways.items():
            for v, cs in draws:
                t = time.perf_counter()
                way(v, cs)
                samples[name].append(time.perf_counter() - t)
    return {k: percentiles(s[len(s) // 2:]) for k, s in samples.items()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--degree", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--port", type=int, default=7699)
    a = ap.parse_args()
    main(a.users, a.degree, a.candidates, a.requests, a.port)
