"""The newcomer index's reads of Neo4j: what changed since the last read, against the whole read.

A simulated world goes into a throw-away Neo4j; then N accounts sign up (dated now, as the API dates them)
and befriend 1 to 3 users each. Then a burst of changes, about 150 s of them on a platform with 200,000
sign-ups a day (the 30 s between two reads and the reads' 120 s overlap): 350 more sign-ups, 350 ties
between newcomers and others, 35 unfriendings and 35 deletions. Timed, each as the index runs it (the
store's read, then the index built or updated from it): the whole read (`GraphStore.new_accounts`, the
baseline: every read was whole before 2026-12-06) and the read of what changed since just before the burst
(`GraphStore.newcomer_changes`), at N and at 10x N newcomers. Also checked: that both give the same index,
and which indexes the planner uses for the changes read.

    PYTHONPATH=. .venv/bin/python bench/newcomer_reads.py [--users 5000] [--new-users 3000] [--reps 10]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_neo4j, load_world, percentiles, sim_world, write_results  # noqa: E402
from candidates.newcomer_ties import NewcomerTies  # noqa: E402
from candidates.newcomers import NewcomerConfig  # noqa: E402
from graph import cypher  # noqa: E402
from graph.connect import open_store  # noqa: E402
from graph.records import Friendship, UserRecord  # noqa: E402

BATCH = 10_000
CONFIG = NewcomerConfig()


def _sign_up(store, others: list[str], names: list[str], rng: np.random.Generator) -> None:
    for i in range(0, len(names), BATCH):
        chunk = names[i:i + BATCH]
        store.upsert_users([UserRecord(id=u) for u in chunk], created_at_default=time.time())
        store.add_friendships([Friendship(u, others[int(x)], None) for j, u in enumerate(chunk)
                               for x in rng.choice(len(others), 1 + j % 3, replace=False)])


def _burst(store, world: list[str], newcomers: list[str], tag: str, rng: np.random.Generator) -> set[str]:
    """About 150 s of a large platform's changes touching newcomers; returns the newcomers deleted."""
    _sign_up(store, world, [f"{tag}-late-{i}" for i in range(350)], rng)
    store.add_friendships([Friendship(newcomers[int(rng.integers(len(newcomers)))], world[int(rng.integers(
        len(world)))], None) for _ in range(350)])
    for u in rng.choice(newcomers, 35, replace=False):
        friends = store.friends(str(u))
        if friends:
            store.remove_friendship(str(u), friends[0])
    deleted = {str(u) for u in rng.choice(newcomers, 35, replace=False)}
    store.delete_users(deleted)
    return deleted


def _time(read, reps: int) -> tuple[dict, object]:
    seconds, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = read()
        seconds.append(time.perf_counter() - t0)
    return percentiles(seconds), out


def _index_seeks(store, since: float, changed: float) -> list[str]:
    """The index seeks in the planner's plan for the changes read (EXPLAIN: nothing runs)."""
    plan = store._driver.execute_query("EXPLAIN " + cypher.Q_NEWCOMER_CHANGES, since=since, changed=changed,
                                       limit=CONFIG.max_accounts, max_friends=CONFIG.max_friends).summary.plan
    found, todo = [], [plan]
    while todo:
        op = todo.pop()
        if "Index" in op["operatorType"]:
            found.append(f"{op['operatorType'].split('@')[0]}: {op['args'].get('Details', '')}")
        todo += op.get("children", [])
    return sorted(found)


@click.command()
@click.option("--users", default=5000, show_default=True, help="users of the simulated world")
@click.option("--new-users", default=3000, show_default=True, help="newcomers at the first scale (then 10x)")
@click.option("--reps", default=10, show_default=True, help="timed reads of each kind at each scale")
@click.option("--port", default=7697, show_default=True)
def main(users: int, new_users: int, reps: int, port: int) -> None:
    world = sim_world(f"fresh-path-world-{users}", users, days=1)
    rng = np.random.default_rng(0)
    out: dict = {}
    with fresh_neo4j("newcomer-reads-neo4j", port) as settings:
        store = open_store(settings, for_requests=False)
        try:
            others = [p.id for p in load_world(store, world)]
            since = time.time()
            newcomers: list[str] = []
            for scale, count in (("1x", new_users), ("10x", 9 * new_users)):
                names = [f"new-{scale}-{i}" for i in range(count)]
                _sign_up(store, others, names, rng)
                newcomers += names
                _time(lambda: store.new_accounts(since, CONFIG.max_accounts, CONFIG.max_friends), 2)   # warm
                before = NewcomerTies.of(time.time(),
                                         store.new_accounts(since, CONFIG.max_accounts, CONFIG.max_friends))
                mark = time.time()
                time.sleep(0.01)
                deleted = _burst(store, others, newcomers, scale, rng)
                newcomers = [u for u in newcomers if u not in deleted]
                whole_ms, whole = _time(lambda: NewcomerTies.of(time.time(), store.new_accounts(
                    since, CONFIG.max_accounts, CONFIG.max_friends)), reps)
                changes = store.newcomer_changes(since, mark, CONFIG.max_accounts, CONFIG.max_friends)
                changes_ms, updated = _time(lambda b=before, m=mark: b.updated(time.time(), store.newcomer_changes(
                    since, m, CONFIG.max_accounts, CONFIG.max_friends), CONFIG.max_accounts), reps)
                same = updated.accounts == whole.accounts and {f: set(n) for f, n in updated.by_friend.items()} \
                    == {f: set(n) for f, n in whole.by_friend.items()}
                out[scale] = {"newcomers_with_a_friend": len(whole.accounts),
                              "ties_indexed": sum(len(friends) for _, _, friends in whole.accounts.values()),
                              "accounts_in_the_changes_read": len(changes.accounts),
                              "deleted_in_the_changes_read": len(changes.gone),
                              "baseline_whole_read_ms": whole_ms, "changes_read_ms": changes_ms,
                              "p50_ratio_whole_over_changes": round(whole_ms["p50_ms"] / changes_ms["p50_ms"], 1),
                              "same_index": same}
                print(scale, out[scale], flush=True)
            out["changes_read_index_seeks"] = _index_seeks(store, since, time.time() - 150)
        finally:
            store.close()
    write_results("newcomer_reads", {"users": users, "new_users": new_users, "reps": reps, **out})


if __name__ == "__main__":
    main()
